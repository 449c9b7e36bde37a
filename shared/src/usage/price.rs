//! Prices per catalog kind and model (exact name or `*` pattern), in integer micro-units of
//! currency per million tokens, read from `prices.json` (each row with its source and date), and
//! the cost of a `Usage` in micro-units (no floating point).

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::Usage;

/// Prices of one model, in micro-units per million tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// `None`: cache reads cost the input price.
    pub cache_read: Option<u64>,
    /// `None`: cache writes cost the input price.
    pub cache_write: Option<u64>,
    /// `None`: 1-hour cache writes cost the `cache_write` price.
    pub cache_write_1h: Option<u64>,
    /// `None`: reasoning tokens cost the output price.
    pub reasoning: Option<u64>,
    /// Prices when a request's prompt is larger than this many tokens (long-context tiers).
    pub above: Option<(u64, Box<Price>)>,
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRow {
    pub kind: String,
    /// An exact model name, or a pattern with `*` (matches any run of characters).
    pub model: String,
    pub pattern: bool,
    pub price: Price,
    pub source: String,
    pub date: String,
    /// Off-peak prices (DeepSeek's, outside its peak hours). Which applies depends on the time
    /// of the request, which the caller knows: `price` is the peak price.
    pub off_peak: Option<Price>,
}

/// Prices, looked up by catalog kind and model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PriceTable {
    pub currency: String,
    pub rows: Vec<PriceRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    #[error("price table: {0}")]
    Invalid(String),
}

/// The unit every amount of a table is in.
pub const UNIT: &str = "per 1M tokens";

/// The table kept in the repository.
const BUILTIN: &str = include_str!("prices.json");

impl PriceTable {
    /// The table kept in the repository (`prices.json`), parsed once.
    pub fn builtin() -> PriceTable {
        PriceTable::builtin_ref().clone()
    }

    /// The table kept in the repository, without a copy. A unit test proves it parses; were it
    /// not to, the table would be empty (nothing priced) rather than the process failing.
    pub fn builtin_ref() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| PriceTable::parse(BUILTIN).unwrap_or_default())
    }

    /// A table from its JSON form (the form of `prices.json`, also what the API takes). Every
    /// problem is reported, joined in one message; `check` lists them apart.
    pub fn parse(json: &str) -> Result<PriceTable, PriceError> {
        PriceTable::check(json).map_err(|problems| PriceError::Invalid(problems.join("; ")))
    }

    /// A table from its JSON form, or every problem it has.
    ///
    /// The form: `{"currency", "unit": "per 1M tokens", "rows": [{kind, model | pattern, input,
    /// output, cache_read, cache_write, cache_write_1h, reasoning, above_tokens + above, off_peak,
    /// source, date}]}`. Amounts are decimal strings (at most six decimals) per million tokens;
    /// a `null` or missing optional amount is `None`; a `null` output (embedding models) is 0.
    /// `above` and `off_peak` hold the same amounts. Unknown fields are ignored. Two rows of one
    /// kind for the same name or pattern are a problem.
    pub fn check(json: &str) -> Result<PriceTable, Vec<String>> {
        let doc: Value = serde_json::from_str(json).map_err(|e| vec![format!("not JSON: {e}")])?;
        let mut problems = Vec::new();
        let currency = match doc.get("currency").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => c.to_string(),
            _ => {
                problems.push("currency: missing".to_string());
                String::new()
            }
        };
        match doc.get("unit") {
            None => {}
            Some(u) if u.as_str() == Some(UNIT) => {}
            Some(u) => problems.push(format!("unit: {u} (amounts must be {UNIT:?})")),
        }
        // Rows that parse, with their index in the file.
        let mut rows: Vec<(usize, PriceRow)> = Vec::new();
        match doc.get("rows").and_then(Value::as_array) {
            None => problems.push("rows: missing".to_string()),
            Some(raw) => {
                for (i, r) in raw.iter().enumerate() {
                    match row(r) {
                        Ok(row) => rows.push((i, row)),
                        Err(ps) => problems.extend(ps.into_iter().map(|p| format!("row {i}: {p}"))),
                    }
                }
            }
        }
        for (n, (i, r)) in rows.iter().enumerate() {
            let same = |(_, o): &&(usize, PriceRow)| {
                o.kind == r.kind && o.model == r.model && o.pattern == r.pattern
            };
            if let Some((j, _)) = rows[..n].iter().find(same) {
                let what = if r.pattern { "pattern" } else { "model" };
                problems.push(format!(
                    "{} {what} {:?} is priced twice (rows {j} and {i})",
                    r.kind, r.model
                ));
            }
        }
        if problems.is_empty() {
            let rows = rows.into_iter().map(|(_, r)| r).collect();
            Ok(PriceTable { currency, rows })
        } else {
            Err(problems)
        }
    }

    /// The row for `kind` and `model`: an exact name first, then the first pattern that matches
    /// (in the table's order).
    pub fn find(&self, kind: &str, model: &str) -> Option<&PriceRow> {
        let of_kind = || self.rows.iter().filter(move |r| r.kind == kind);
        of_kind()
            .find(|r| !r.pattern && r.model == model)
            .or_else(|| of_kind().find(|r| r.pattern && matches(&r.model, model)))
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters (none included) and
/// every other character, `[`, `?` and `.` among them, only itself.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // The last `*` seen and where in `name` its run ends for now: on a mismatch it grows by one.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && p[i] == b'*' {
            star = Some((i, j));
            i += 1;
        } else if i < p.len() && p[i] == n[j] {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// What `usage` costs at `price`, in micro-units, rounded to the nearest unit (half up, once).
///
/// When the price has a long-context tier and the prompt (input, cache reads and writes) is
/// larger than its threshold, the whole request is priced at the tier. Then: input × input +
/// cache reads × (cache_read or input) + cache writes × (cache_write or input) + 1-hour writes ×
/// (cache_write_1h or cache_write or input) + (output − reasoning) × output + reasoning ×
/// (reasoning or output), over one million, in 128-bit integers.
pub fn cost(usage: &Usage, price: &Price) -> u64 {
    let p = match &price.above {
        Some((threshold, tier)) if usage.prompt() > *threshold => tier.as_ref(),
        _ => price,
    };
    let write = p.cache_write.unwrap_or(p.input);
    let terms = [
        (usage.input, p.input),
        (usage.cache_read, p.cache_read.unwrap_or(p.input)),
        (usage.cache_write, write),
        (usage.cache_write_1h, p.cache_write_1h.unwrap_or(write)),
        (usage.output.saturating_sub(usage.reasoning), p.output),
        (usage.reasoning, p.reasoning.unwrap_or(p.output)),
    ];
    // Each product fits in 128 bits; their sum saturates (at that point far beyond u64 anyway).
    let sum = terms.iter().fold(0u128, |acc, &(tokens, rate)| {
        acc.saturating_add(u128::from(tokens) * u128::from(rate))
    });
    u64::try_from(sum.saturating_add(500_000) / 1_000_000).unwrap_or(u64::MAX)
}

/// A decimal amount (`"2.50"`, `"0.075"`, at most six decimals) in micro-units.
pub fn parse_amount(s: &str) -> Result<u64, PriceError> {
    let bad = || {
        PriceError::Invalid(format!(
            "{s:?} is not a decimal amount with at most six decimals"
        ))
    };
    let (whole, frac) = match s.split_once('.') {
        Some((w, f)) => (w, f),
        None => (s, ""),
    };
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 6 {
        return Err(bad());
    }
    if s.contains('.') && frac.is_empty() {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().map_err(|_| bad())? * 10u64.pow(6 - frac.len() as u32)
    };
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// One row, or its problems.
fn row(r: &Value) -> Result<PriceRow, Vec<String>> {
    let Some(r) = r.as_object() else {
        return Err(vec!["not an object".to_string()]);
    };
    let mut problems = Vec::new();
    let text = |key: &str, problems: &mut Vec<String>| match r.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => {
            problems.push(format!("{key}: missing"));
            String::new()
        }
    };
    let kind = text("kind", &mut problems);
    let source = text("source", &mut problems);
    let date = text("date", &mut problems);
    let (model, pattern) = match (
        r.get("model").and_then(Value::as_str),
        r.get("pattern").and_then(Value::as_str),
    ) {
        (Some(m), None) if !m.is_empty() => (m.to_string(), false),
        (None, Some(p)) if !p.is_empty() => (p.to_string(), true),
        _ => {
            problems.push("needs one of model or pattern".to_string());
            (String::new(), false)
        }
    };
    let name = |p: String| format!("{kind} {model}: {p}");
    let mut price = amounts(r, &mut problems);
    match (r.get("above_tokens"), r.get("above")) {
        (None, None) => {}
        (Some(t), Some(Value::Object(a))) => match t.as_u64() {
            Some(t) => price.above = Some((t, Box::new(amounts(a, &mut problems)))),
            None => problems.push(format!("above_tokens: {t} is not a token count")),
        },
        _ => problems.push("above_tokens and above go together".to_string()),
    }
    let off_peak = match r.get("off_peak") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(amounts(o, &mut problems)),
        Some(_) => {
            problems.push("off_peak: not an object".to_string());
            None
        }
    };
    if !problems.is_empty() {
        return Err(problems.into_iter().map(name).collect());
    }
    Ok(PriceRow {
        kind,
        model,
        pattern,
        price,
        source,
        date,
        off_peak,
    })
}

/// The amounts of a row (or of its `above` or `off_peak`), recording problems.
fn amounts(o: &Map<String, Value>, problems: &mut Vec<String>) -> Price {
    let mut amount = |key: &str, required: bool| -> Option<u64> {
        match o.get(key) {
            None | Some(Value::Null) => {
                if required {
                    problems.push(format!("{key}: missing"));
                }
                None
            }
            Some(Value::String(s)) => match parse_amount(s) {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(format!("{key}: {e}"));
                    None
                }
            },
            Some(v) => {
                problems.push(format!("{key}: {v} is not a decimal string"));
                None
            }
        }
    };
    Price {
        input: amount("input", true).unwrap_or(0),
        // Embedding models have no output price.
        output: amount("output", false).unwrap_or(0),
        cache_read: amount("cache_read", false),
        cache_write: amount("cache_write", false),
        cache_write_1h: amount("cache_write_1h", false),
        reasoning: amount("reasoning", false),
        above: None,
    }
}
