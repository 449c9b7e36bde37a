//! Admission control: the usage limits and budgets a request meets (its key's, its project's,
//! the operator's plan for the project; each end user's within them), reserved before the first
//! attempt through the worker's `limits::WorkerLimits`. A request whose key and project have no
//! limits costs three `Option` checks here.

use to11_shared::body::Scan;
use to11_shared::limits::{checks, Owner, Reservation, Scope};
use to11_shared::usage::{estimate, Usage};

use super::admit::Call;
use crate::auth::Caller;
use to11_shared::record::clean_user;

use crate::error::GatewayError;
use crate::limits::{PlanKey, RateHeaders, Refused, Ticket};
use crate::metering::Draft;
use crate::Worker;

/// Whether any limit may apply to the caller (then a record draft carries the ticket).
pub fn limited(caller: &Caller) -> bool {
    caller.key.limits.is_some() || caller.project.limits.is_some() || caller.project.plan.is_some()
}

/// Reserves what the request may use on every limit it meets; `None` when none applies. The end
/// user is `header_user` (`x-to11-user`), else the body's `user`.
pub async fn reserve(
    worker: &Worker,
    caller: &Caller,
    call: &Call<'_>,
    scan: &Scan<'_>,
    body_len: usize,
    header_user: Option<String>,
    now_ms: i64,
) -> Result<Option<Ticket>, Refused> {
    if !limited(caller) {
        return Ok(None);
    }
    let user = header_user.or_else(|| scan.user.as_deref().and_then(clean_user));
    let user = user.as_deref();
    let p = &caller.project;
    let scopes = || -> Vec<Scope<'_>> {
        [
            (Owner::Key, caller.key.key_id, caller.key.limits.as_ref()),
            (Owner::Project, p.id, p.limits.as_ref()),
            (Owner::Plan, p.id, p.plan.as_ref()),
        ]
        .into_iter()
        .filter_map(|(owner, id, l)| l.map(|limits| Scope { owner, id, limits }))
        .collect()
    };
    let reserves = [
        caller.key.limits.as_ref(),
        p.limits.as_ref(),
        p.plan.as_ref(),
    ]
    .into_iter()
    .flatten()
    .any(|l| l.reserves_tokens());
    let need = if reserves {
        reservation(&worker.limits, caller, call, scan, body_len)
    } else {
        Reservation::default()
    };
    let plan = PlanKey {
        key: caller.key.key_id,
        version: p.version,
        model: call.model,
        user,
    };
    let make = || checks(&scopes(), call.model, user, &Reservation::default());
    let ticket = worker
        .limits
        .admit_planned(p.id, plan, make, &need, now_ms)
        .await?;
    Ok((!ticket.is_empty()).then_some(ticket))
}

/// Where an admission goes: the ticket into the request's record draft (which settles it), the
/// `x-ratelimit-*` values to the answer; a refusal is the request's error.
pub fn hand_over(
    admitted: Result<Option<Ticket>, Refused>,
    draft: &mut Option<Draft>,
    rate: &mut Option<RateHeaders>,
) -> Result<(), GatewayError> {
    match admitted {
        Ok(Some(mut ticket)) => {
            *rate = Some(std::mem::take(&mut ticket.headers));
            if let Some(d) = draft.as_mut() {
                d.ticket(ticket);
            }
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(refused) => {
            *rate = Some(refused.headers);
            Err(refused.error)
        }
    }
}

/// What a request is expected to use: its input estimated from the body's size (as metering
/// estimates an answer without usage), its output up to its `max_tokens` (or the configured
/// default), and their cost at the first target's price.
fn reservation(
    limits: &crate::limits::WorkerLimits,
    caller: &Caller,
    call: &Call<'_>,
    scan: &Scan<'_>,
    body_len: usize,
) -> Reservation {
    let input = estimate(body_len as u64, 0, 0).input;
    let output = scan.max_output.unwrap_or(limits.default_output_tokens());
    let spend = call.resolution.targets.first().and_then(|t| {
        let kind = &caller.project.tables.providers.get(t.provider)?.kind;
        let usage = Usage {
            input,
            output,
            ..Default::default()
        };
        limits.cost(kind, &t.model, &usage)
    });
    Reservation {
        input_tokens: input,
        output_tokens: output,
        spend,
    }
}
