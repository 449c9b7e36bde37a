//! The usage store in PostgreSQL. Records go into `to11_requests`, partitioned by day (a day's
//! partition is made when its first record arrives; retention drops whole partitions); rollups
//! into `to11_usage_minute`, `to11_usage_hour`, `to11_usage_hour_user` and `to11_usage_hour_tag`.
//! A batch is one transaction: the records inserted with `UNNEST` (one statement, duplicates of
//! a request id skipped), then one upsert per rollup table adding what the newly inserted
//! records sum to. Two connections: one for writes (transactions, one at a time), one for reads.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex as StdMutex};

use chrono::{DateTime, DurationRound, NaiveDate, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use to11_shared::record::RequestRecord;
use tokio::sync::Mutex;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::query::{Interval, LogQuery, RowQuery, StatusFilter, Table};
use super::rollup::{rollups, Dims, Sums, BUCKETS};
use super::{PriceScope, Row, UsageError, UsageStore};

/// Serialises schema changes between control planes.
const SCHEMA_LOCK: i64 = 0x7011_5c4e;

/// The columns every rollup table sums, in order.
fn sum_columns() -> Vec<String> {
    let mut c: Vec<String> = [
        "requests",
        "errors",
        "input",
        "output",
        "cache_read",
        "cache_write",
        "reasoning",
        "cost",
        "unpriced",
        "estimated",
        "latency_us",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    c.extend((0..BUCKETS).map(|i| format!("h{i}")));
    c
}

fn schema() -> String {
    let sums: String = sum_columns()
        .iter()
        .map(|c| format!("{c} bigint NOT NULL DEFAULT 0, "))
        .collect();
    let summed = summed_columns();
    format!(
        "CREATE TABLE IF NOT EXISTS to11_requests (
            ts timestamptz NOT NULL, id uuid NOT NULL, project uuid NOT NULL, key uuid NOT NULL,
            surface text NOT NULL, requested_model text NOT NULL, layer text NOT NULL,
            function text, route text, provider text, provider_kind text, model text,
            stream boolean NOT NULL, status int NOT NULL, error text, attempts int NOT NULL,
            failed jsonb, latency_us bigint NOT NULL, ttfb_us bigint,
            input bigint, output bigint, cache_read bigint, cache_write bigint,
            cache_write_1h bigint, reasoning bigint, usage_source text,
            cancelled boolean NOT NULL, cost bigint, end_user text, tags jsonb,
            PRIMARY KEY (ts, id)
        ) PARTITION BY RANGE (ts);
        CREATE INDEX IF NOT EXISTS to11_requests_by_project ON to11_requests (project, ts DESC, id DESC);
        CREATE INDEX IF NOT EXISTS to11_requests_by_model ON to11_requests (project, model, ts DESC);
        CREATE INDEX IF NOT EXISTS to11_requests_by_key ON to11_requests (project, key, ts DESC);
        CREATE INDEX IF NOT EXISTS to11_requests_by_user ON to11_requests (project, end_user, ts DESC);
        CREATE INDEX IF NOT EXISTS to11_requests_by_status ON to11_requests (project, status, ts DESC);
        CREATE TABLE IF NOT EXISTS to11_usage_minute (bucket timestamptz NOT NULL, project uuid NOT NULL,
            key uuid NOT NULL, model text NOT NULL, provider text NOT NULL, route text NOT NULL, {sums}
            PRIMARY KEY (project, bucket, key, model, provider, route));
        CREATE TABLE IF NOT EXISTS to11_usage_hour (bucket timestamptz NOT NULL, project uuid NOT NULL,
            key uuid NOT NULL, model text NOT NULL, provider text NOT NULL, route text NOT NULL, {sums}
            PRIMARY KEY (project, bucket, key, model, provider, route));
        CREATE INDEX IF NOT EXISTS to11_usage_hour_by_bucket ON to11_usage_hour (bucket);
        CREATE TABLE IF NOT EXISTS to11_usage_hour_user (bucket timestamptz NOT NULL, project uuid NOT NULL,
            end_user text NOT NULL, {sums} PRIMARY KEY (project, bucket, end_user));
        CREATE TABLE IF NOT EXISTS to11_usage_hour_tag (bucket timestamptz NOT NULL, project uuid NOT NULL,
            tag text NOT NULL, value text NOT NULL, {sums} PRIMARY KEY (project, bucket, tag, value));
        CREATE TABLE IF NOT EXISTS to11_prices (scope text PRIMARY KEY, body text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now());
        DO $$ BEGIN
        IF to_regclass('to11_usage_day') IS NULL THEN
            CREATE TABLE to11_usage_day (bucket timestamptz NOT NULL, project uuid NOT NULL,
                key uuid NOT NULL, model text NOT NULL, provider text NOT NULL, route text NOT NULL, {sums}
                PRIMARY KEY (project, bucket, key, model, provider, route));
            CREATE INDEX to11_usage_day_by_bucket ON to11_usage_day (bucket);
            CREATE TABLE to11_usage_day_user (bucket timestamptz NOT NULL, project uuid NOT NULL,
                end_user text NOT NULL, {sums} PRIMARY KEY (project, bucket, end_user));
            CREATE TABLE to11_usage_day_tag (bucket timestamptz NOT NULL, project uuid NOT NULL,
                tag text NOT NULL, value text NOT NULL, {sums} PRIMARY KEY (project, bucket, tag, value));
            -- Day rollups of what was stored before they existed.
            INSERT INTO to11_usage_day SELECT date_trunc('day', bucket, 'UTC'), project, key, model,
                provider, route, {summed} FROM to11_usage_hour GROUP BY 1, 2, 3, 4, 5, 6;
            INSERT INTO to11_usage_day_user SELECT date_trunc('day', bucket, 'UTC'), project, end_user,
                {summed} FROM to11_usage_hour_user GROUP BY 1, 2, 3;
            INSERT INTO to11_usage_day_tag SELECT date_trunc('day', bucket, 'UTC'), project, tag, value,
                {summed} FROM to11_usage_hour_tag GROUP BY 1, 2, 3, 4;
        END IF;
        END $$;"
    )
}

/// `SUM(c)::int8` of every summed column, in order.
fn summed_columns() -> String {
    sum_columns()
        .iter()
        .map(|c| format!("SUM({c})::int8"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn err(e: tokio_postgres::Error) -> UsageError {
    if e.is_closed() || e.code().is_none() {
        UsageError::Unavailable(e.to_string())
    } else {
        UsageError::Query(e.to_string())
    }
}

pub struct PgStore {
    url: String,
    writer: Mutex<Option<Client>>,
    reader: Mutex<Option<Arc<Client>>>,
    /// Days whose partition exists.
    days: StdMutex<HashSet<NaiveDate>>,
    /// Whether the schema was made (on the first connection).
    schema_made: std::sync::atomic::AtomicBool,
}

async fn connect(url: &str) -> Result<Client, UsageError> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| UsageError::Unavailable(e.to_string()))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

impl PgStore {
    /// A store at `url`; connections are made when first needed (and again after a failure),
    /// so a database that is down does not keep the control plane from starting.
    pub fn new(url: &str) -> PgStore {
        PgStore {
            url: url.to_string(),
            writer: Mutex::new(None),
            reader: Mutex::new(None),
            days: StdMutex::default(),
            schema_made: Default::default(),
        }
    }

    /// A connection, with the schema made once (idempotent, serialised between control planes).
    async fn open(&self) -> Result<Client, UsageError> {
        let client = connect(&self.url).await?;
        if !self.schema_made.load(std::sync::atomic::Ordering::Relaxed) {
            client
                .query("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(err)?;
            let made = client.batch_execute(&schema()).await.map_err(err);
            client
                .query("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK])
                .await
                .map_err(err)?;
            made?;
            self.schema_made
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(client)
    }

    async fn reader(&self) -> Result<Arc<Client>, UsageError> {
        let mut g = self.reader.lock().await;
        if let Some(c) = g.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = self.open().await?;
        // Usage queries sum tens of thousands of rollup rows in memory; the default 4 MB makes
        // them spill to disk.
        c.batch_execute("SET work_mem = '64MB'")
            .await
            .map_err(err)?;
        let c = Arc::new(c);
        *g = Some(c.clone());
        Ok(c)
    }

    async fn insert_batch(&self, batch: &[RequestRecord]) -> Result<usize, UsageError> {
        let mut g = self.writer.lock().await;
        if g.as_ref().is_none_or(Client::is_closed) {
            *g = Some(self.open().await?);
        }
        let Some(client) = g.as_mut() else {
            return Err(UsageError::Unavailable("no connection".into()));
        };
        let tx = client.transaction().await.map_err(err)?;
        self.partitions(&tx, batch).await?;
        let ids = insert_records(&tx, batch).await?;
        let fresh: Vec<RequestRecord> = batch
            .iter()
            .filter(|r| ids.contains(&r.id))
            .cloned()
            .collect();
        add_rollups(&tx, &fresh).await?;
        tx.commit().await.map_err(err)?;
        Ok(fresh.len())
    }

    /// Makes the daily partitions the batch needs.
    async fn partitions(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        batch: &[RequestRecord],
    ) -> Result<(), UsageError> {
        let needed: BTreeSet<NaiveDate> = batch.iter().map(|r| r.time.date_naive()).collect();
        let missing: Vec<NaiveDate> = match self.days.lock() {
            Ok(known) => needed.into_iter().filter(|d| !known.contains(d)).collect(),
            Err(_) => needed.into_iter().collect(),
        };
        if missing.is_empty() {
            return Ok(());
        }
        tx.query("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(err)?;
        for d in &missing {
            let next = *d + TimeDelta::days(1);
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS to11_requests_p{} PARTITION OF to11_requests \
                 FOR VALUES FROM ('{d} 00:00:00+00') TO ('{next} 00:00:00+00')",
                d.format("%Y%m%d")
            ))
            .await
            .map_err(err)?;
        }
        if let Ok(mut known) = self.days.lock() {
            known.extend(missing);
        }
        Ok(())
    }
}

/// Inserts the records, skipping request ids already stored; the ids inserted.
async fn insert_records(
    tx: &tokio_postgres::Transaction<'_>,
    batch: &[RequestRecord],
) -> Result<HashSet<Uuid>, UsageError> {
    let col = |f: &dyn Fn(&RequestRecord) -> Option<String>| -> Vec<Option<String>> {
        batch.iter().map(f).collect()
    };
    let num = |f: &dyn Fn(&RequestRecord) -> Option<i64>| -> Vec<Option<i64>> {
        batch.iter().map(f).collect()
    };
    let usage = |f: fn(&to11_shared::usage::Usage) -> u64| -> Vec<Option<i64>> {
        batch
            .iter()
            .map(|r| r.usage.as_ref().map(|u| f(u) as i64))
            .collect()
    };
    let ts: Vec<DateTime<Utc>> = batch.iter().map(|r| r.time).collect();
    let id: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
    let project: Vec<Uuid> = batch.iter().map(|r| r.project).collect();
    let key: Vec<Uuid> = batch.iter().map(|r| r.key).collect();
    let surface = col(&|r| Some(r.surface.to_string()));
    let requested = col(&|r| Some(r.requested_model.clone()));
    let layer = col(&|r| Some(r.layer.to_string()));
    let function = col(&|r| r.function.clone());
    let route = col(&|r| r.route.clone());
    let provider = col(&|r| r.provider.clone());
    let kind = col(&|r| r.provider_kind.clone());
    let model = col(&|r| r.model.clone());
    let stream: Vec<bool> = batch.iter().map(|r| r.stream).collect();
    let status: Vec<i32> = batch.iter().map(|r| i32::from(r.status)).collect();
    let error = col(&|r| r.error.clone());
    let attempts: Vec<i32> = batch.iter().map(|r| r.attempts as i32).collect();
    let failed: Vec<Option<serde_json::Value>> = batch
        .iter()
        .map(|r| (!r.failed.is_empty()).then(|| serde_json::json!(r.failed)))
        .collect();
    let latency = num(&|r| Some(r.latency_us as i64));
    let ttfb = num(&|r| r.ttfb_us.map(|v| v as i64));
    let (input, output, cread, cwrite) = (
        usage(|u| u.input),
        usage(|u| u.output),
        usage(|u| u.cache_read),
        usage(|u| u.cache_write),
    );
    let (cwrite_1h, reasoning) = (usage(|u| u.cache_write_1h), usage(|u| u.reasoning));
    let source = col(&|r| {
        r.usage_source
            .and_then(|s| serde_json::to_value(s).ok())
            .and_then(|v| v.as_str().map(str::to_string))
    });
    let cancelled: Vec<bool> = batch.iter().map(|r| r.cancelled).collect();
    let cost = num(&|r| r.cost.map(|c| c as i64));
    let user = col(&|r| r.user.clone());
    let tags: Vec<Option<serde_json::Value>> = batch
        .iter()
        .map(|r| (!r.tags.is_empty()).then(|| serde_json::json!(r.tags)))
        .collect();
    let params: [&(dyn ToSql + Sync); 30] = [
        &ts, &id, &project, &key, &surface, &requested, &layer, &function, &route, &provider,
        &kind, &model, &stream, &status, &error, &attempts, &failed, &latency, &ttfb, &input,
        &output, &cread, &cwrite, &cwrite_1h, &reasoning, &source, &cancelled, &cost, &user, &tags,
    ];
    let rows = tx
        .query(
            "INSERT INTO to11_requests (ts, id, project, key, surface, requested_model, layer,
                function, route, provider, provider_kind, model, stream, status, error, attempts,
                failed, latency_us, ttfb_us, input, output, cache_read, cache_write,
                cache_write_1h, reasoning, usage_source, cancelled, cost, end_user, tags)
             SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::uuid[],
                $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[], $12::text[], $13::bool[], $14::int4[], $15::text[], $16::int4[],
                $17::jsonb[], $18::int8[], $19::int8[], $20::int8[], $21::int8[], $22::int8[],
                $23::int8[], $24::int8[], $25::int8[], $26::text[], $27::bool[], $28::int8[],
                $29::text[], $30::jsonb[])
             ON CONFLICT DO NOTHING RETURNING id",
            &params,
        )
        .await
        .map_err(err)?;
    Ok(rows.iter().map(|r| r.get::<_, Uuid>(0)).collect())
}

/// The `SET` clause adding `EXCLUDED`'s sums to a rollup row of `table`.
fn add_clause(table: &str) -> String {
    sum_columns()
        .iter()
        .map(|c| format!("{c} = {table}.{c} + EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sums of rollup rows as one array per column (for `UNNEST`).
fn sum_arrays<'a>(sums: impl Iterator<Item = &'a Sums>) -> Vec<Vec<i64>> {
    let mut cols = vec![Vec::new(); 11 + BUCKETS];
    for s in sums {
        let v = [
            s.requests,
            s.errors,
            s.input,
            s.output,
            s.cache_read,
            s.cache_write,
            s.reasoning,
            s.cost,
            s.unpriced,
            s.estimated,
            s.latency_us,
        ];
        for (c, x) in cols.iter_mut().zip(v.iter().chain(s.hist.iter())) {
            c.push(*x);
        }
    }
    cols
}

/// `$a::int8[], …` for the sum columns, numbered from `first`.
fn sum_params(first: usize) -> String {
    (0..11 + BUCKETS)
        .map(|i| format!("${}::int8[]", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn add_rollups(
    tx: &tokio_postgres::Transaction<'_>,
    fresh: &[RequestRecord],
) -> Result<(), UsageError> {
    if fresh.is_empty() {
        return Ok(());
    }
    let r = rollups(fresh);
    for (table, rows) in [
        ("to11_usage_minute", &r.minute),
        ("to11_usage_hour", &r.hour),
        ("to11_usage_day", &r.day),
    ] {
        add_main(tx, table, rows).await?;
    }
    for (table, rows) in [
        ("to11_usage_hour_user", &r.user),
        ("to11_usage_day_user", &r.day_user),
    ] {
        add_user(tx, table, rows).await?;
    }
    for (table, rows) in [
        ("to11_usage_hour_tag", &r.tag),
        ("to11_usage_day_tag", &r.day_tag),
    ] {
        add_tag(tx, table, rows).await?;
    }
    Ok(())
}

/// Adds rows of the main dimensions to `table`, in one statement.
async fn add_main(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[(DateTime<Utc>, Dims, Sums)],
) -> Result<(), UsageError> {
    let bucket: Vec<DateTime<Utc>> = rows.iter().map(|x| x.0).collect();
    let project: Vec<Uuid> = rows.iter().map(|x| x.1.project).collect();
    let key: Vec<Uuid> = rows.iter().map(|x| x.1.key).collect();
    let model: Vec<&str> = rows.iter().map(|x| x.1.model.as_str()).collect();
    let provider: Vec<&str> = rows.iter().map(|x| x.1.provider.as_str()).collect();
    let route: Vec<&str> = rows.iter().map(|x| x.1.route.as_str()).collect();
    let sums = sum_arrays(rows.iter().map(|x| &x.2));
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&bucket, &project, &key, &model, &provider, &route];
    params.extend(sums.iter().map(|c| c as &(dyn ToSql + Sync)));
    let sql = format!(
        "INSERT INTO {table} (bucket, project, key, model, provider, route, {})
         SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], {})
         ON CONFLICT (project, bucket, key, model, provider, route) DO UPDATE SET {}",
        sum_columns().join(", "),
        sum_params(7),
        add_clause(table)
    );
    tx.execute(&sql, &params).await.map_err(err)?;
    Ok(())
}

/// Adds rows by end user to `table`.
async fn add_user(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[(DateTime<Utc>, Uuid, String, Sums)],
) -> Result<(), UsageError> {
    let bucket: Vec<DateTime<Utc>> = rows.iter().map(|x| x.0).collect();
    let project: Vec<Uuid> = rows.iter().map(|x| x.1).collect();
    let user: Vec<&str> = rows.iter().map(|x| x.2.as_str()).collect();
    let sums = sum_arrays(rows.iter().map(|x| &x.3));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&bucket, &project, &user];
    params.extend(sums.iter().map(|c| c as &(dyn ToSql + Sync)));
    let sql = format!(
        "INSERT INTO {table} (bucket, project, end_user, {})
         SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::text[], {})
         ON CONFLICT (project, bucket, end_user) DO UPDATE SET {}",
        sum_columns().join(", "),
        sum_params(4),
        add_clause(table)
    );
    tx.execute(&sql, &params).await.map_err(err)?;
    Ok(())
}

/// Adds rows by tag to `table`.
async fn add_tag(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
    rows: &[(DateTime<Utc>, Uuid, String, String, Sums)],
) -> Result<(), UsageError> {
    let bucket: Vec<DateTime<Utc>> = rows.iter().map(|x| x.0).collect();
    let project: Vec<Uuid> = rows.iter().map(|x| x.1).collect();
    let tag: Vec<&str> = rows.iter().map(|x| x.2.as_str()).collect();
    let value: Vec<&str> = rows.iter().map(|x| x.3.as_str()).collect();
    let sums = sum_arrays(rows.iter().map(|x| &x.4));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&bucket, &project, &tag, &value];
    params.extend(sums.iter().map(|c| c as &(dyn ToSql + Sync)));
    let sql = format!(
        "INSERT INTO {table} (bucket, project, tag, value, {})
         SELECT * FROM UNNEST($1::timestamptz[], $2::uuid[], $3::text[], $4::text[], {})
         ON CONFLICT (project, bucket, tag, value) DO UPDATE SET {}",
        sum_columns().join(", "),
        sum_params(5),
        add_clause(table)
    );
    tx.execute(&sql, &params).await.map_err(err)?;
    Ok(())
}

fn sums_of(row: &tokio_postgres::Row, first: usize) -> Sums {
    let g = |i: usize| row.get::<_, i64>(first + i);
    let mut hist = [0; BUCKETS];
    for (i, h) in hist.iter_mut().enumerate() {
        *h = g(11 + i);
    }
    Sums {
        requests: g(0),
        errors: g(1),
        input: g(2),
        output: g(3),
        cache_read: g(4),
        cache_write: g(5),
        reasoning: g(6),
        cost: g(7),
        unpriced: g(8),
        estimated: g(9),
        latency_us: g(10),
        hist,
    }
}

const RECORD_COLUMNS: &str = "ts, id, project, key, surface, requested_model, layer, function, \
    route, provider, provider_kind, model, stream, status, error, attempts, failed, latency_us, \
    ttfb_us, input, output, cache_read, cache_write, cache_write_1h, reasoning, usage_source, \
    cancelled, cost, end_user, tags";

fn record_of(row: &tokio_postgres::Row) -> RequestRecord {
    let n = |i: usize| row.get::<_, Option<i64>>(i).map(|v| v as u64);
    let usage = n(19).map(|input| to11_shared::usage::Usage {
        input,
        output: n(20).unwrap_or(0),
        cache_read: n(21).unwrap_or(0),
        cache_write: n(22).unwrap_or(0),
        cache_write_1h: n(23).unwrap_or(0),
        reasoning: n(24).unwrap_or(0),
    });
    RequestRecord {
        time: row.get(0),
        id: row.get(1),
        project: row.get(2),
        key: row.get(3),
        surface: row.get::<_, String>(4).into(),
        requested_model: row.get(5),
        layer: row.get::<_, String>(6).into(),
        function: row.get(7),
        route: row.get(8),
        provider: row.get(9),
        provider_kind: row.get(10),
        model: row.get(11),
        stream: row.get(12),
        status: row.get::<_, i32>(13) as u16,
        error: row.get(14),
        attempts: row.get::<_, i32>(15) as u32,
        failed: row
            .get::<_, Option<serde_json::Value>>(16)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        latency_us: row.get::<_, i64>(17) as u64,
        ttfb_us: n(18),
        usage,
        usage_source: row
            .get::<_, Option<String>>(25)
            .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok()),
        cancelled: row.get(26),
        cost: n(27),
        user: row.get(28),
        tags: row
            .get::<_, Option<serde_json::Value>>(29)
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
    }
}

impl PgStore {
    /// Rollup rows summed in the database (see `RollupSql`).
    async fn read_rows(&self, q: &RowQuery) -> Result<Vec<Row>, UsageError> {
        let client = self.reader().await?;
        let sql = RollupSql::of(q);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&q.project];
        for (_, from, to) in &sql.parts {
            params.push(from);
            params.push(to);
        }
        if let Some(t) = &sql.tag {
            params.push(t);
        }
        let rows = client.query(&sql.text, &params).await.map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Row {
                bucket: r.get(0),
                project: r.get(1),
                key: r.get(2),
                model: r.get(3),
                provider: r.get(4),
                route: r.get(5),
                label: r.get(6),
                sums: sums_of(r, 7),
            })
            .collect())
    }

    async fn read_log(&self, q: &LogQuery) -> Result<Vec<RequestRecord>, UsageError> {
        let client = self.reader().await?;
        let mut w = Where::default();
        if let Some(p) = q.project {
            w.add("project = ?", Box::new(p));
        }
        if let Some(t) = q.from {
            w.add("ts >= ?", Box::new(t));
        }
        if let Some(t) = q.to {
            w.add("ts < ?", Box::new(t));
        }
        if let Some((t, id)) = q.before {
            w.add2("(ts, id) < (?, ?)", Box::new(t), Box::new(id));
        }
        match q.status {
            Some(StatusFilter::Exact(s)) => w.add("status = ?", Box::new(i32::from(s))),
            Some(StatusFilter::Class(c)) => w.add2(
                "status >= ? AND status < ?",
                Box::new(i32::from(c)),
                Box::new(i32::from(c) + 100),
            ),
            Some(StatusFilter::Errors) => w.add("status >= ?", Box::new(400i32)),
            None => {}
        }
        if let Some(m) = &q.model {
            w.add("model = ?", Box::new(m.clone()));
        }
        if let Some(p) = &q.provider {
            w.add("provider = ?", Box::new(p.clone()));
        }
        if let Some(k) = q.key {
            w.add("key = ?", Box::new(k));
        }
        if let Some(u) = &q.user {
            w.add("end_user = ?", Box::new(u.clone()));
        }
        if let Some((n, v)) = &q.tag {
            w.add("tags @> ?", Box::new(serde_json::json!({ n: v })));
        }
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM to11_requests WHERE {} ORDER BY ts DESC, id DESC LIMIT {}",
            w.sql(),
            q.limit
        );
        let rows = client.query(&sql, &w.params()).await.map_err(err)?;
        Ok(rows.iter().map(record_of).collect())
    }

    async fn maintain_now(
        &self,
        now: DateTime<Utc>,
        raw_days: u32,
        rollup_days: u32,
    ) -> Result<(), UsageError> {
        let client = self.reader().await?;
        let oldest = (now - TimeDelta::days(i64::from(raw_days))).date_naive();
        let parts = client
            .query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'to11_requests'",
                &[],
            )
            .await
            .map_err(err)?;
        for r in parts {
            let name: String = r.get(0);
            let day = name
                .strip_prefix("to11_requests_p")
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok());
            if day.is_some_and(|d| d < oldest) {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await
                    .map_err(err)?;
                if let (Ok(mut known), Some(d)) = (self.days.lock(), day) {
                    known.remove(&d);
                }
            }
        }
        let minute_cutoff = now - TimeDelta::days(i64::from(raw_days.min(7)));
        let rollup_cutoff = now - TimeDelta::days(i64::from(rollup_days));
        client
            .execute(
                "DELETE FROM to11_usage_minute WHERE bucket < $1",
                &[&minute_cutoff],
            )
            .await
            .map_err(err)?;
        for t in [
            "to11_usage_hour",
            "to11_usage_hour_user",
            "to11_usage_hour_tag",
            "to11_usage_day",
            "to11_usage_day_user",
            "to11_usage_day_tag",
        ] {
            client
                .execute(
                    &format!("DELETE FROM {t} WHERE bucket < $1"),
                    &[&rollup_cutoff],
                )
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A rollup query as SQL: the rows summed into `q.interval` and the dimensions kept (a month by
/// day is a few hundred rows, not tens of thousands), whole days read from the day rollups and
/// any hours at either end from the hour rollups. Parameters: `$1` the project (or NULL), then
/// each part's range, then the tag's name.
struct RollupSql {
    text: String,
    parts: Vec<(&'static str, DateTime<Utc>, DateTime<Utc>)>,
    tag: Option<String>,
}

impl RollupSql {
    fn of(q: &RowQuery) -> RollupSql {
        let nil = "'00000000-0000-0000-0000-000000000000'::uuid";
        let keep = |on: bool, col: &'static str, none: &'static str| if on { col } else { none };
        let project = keep(q.keep.project, "project", nil);
        let (hour, day, inner, outer, tag) = match &q.table {
            Table::Minute | Table::Hour => (
                if q.table == Table::Minute {
                    "to11_usage_minute"
                } else {
                    "to11_usage_hour"
                },
                (q.table == Table::Hour).then_some("to11_usage_day"),
                "bucket, project, key, model, provider, route",
                format!(
                    "{project}, {}, {}, {}, {}, ''",
                    keep(q.keep.key, "key", nil),
                    keep(q.keep.model, "model", "''"),
                    keep(q.keep.provider, "provider", "''"),
                    keep(q.keep.route, "route", "''"),
                ),
                None,
            ),
            Table::User => (
                "to11_usage_hour_user",
                Some("to11_usage_day_user"),
                "bucket, project, end_user AS label",
                format!("{project}, {nil}, '', '', '', label"),
                None,
            ),
            Table::Tag(t) => (
                "to11_usage_hour_tag",
                Some("to11_usage_day_tag"),
                "bucket, project, value AS label",
                format!("{project}, {nil}, '', '', '', label"),
                Some(t.clone()),
            ),
        };
        let parts = ranges(q, hour, day);
        let cols = sum_columns().join(", ");
        let tag_clause = match tag {
            Some(_) => format!(" AND tag = ${}", 2 + 2 * parts.len()),
            None => String::new(),
        };
        let selects: Vec<String> = (0..parts.len())
            .map(|i| {
                format!(
                    "SELECT {inner}, {cols} FROM {} WHERE ($1::uuid IS NULL OR project = $1) \
                     AND bucket >= ${} AND bucket < ${}{tag_clause}",
                    parts[i].0,
                    2 + 2 * i,
                    3 + 2 * i,
                )
            })
            .collect();
        let text = format!(
            "SELECT date_trunc('{}', bucket, 'UTC'), {outer}, {} FROM ({}) r \
             GROUP BY 1, 2, 3, 4, 5, 6, 7",
            q.interval.name(),
            summed_columns(),
            selects.join(" UNION ALL ")
        );
        RollupSql { text, parts, tag }
    }
}

/// The tables and time ranges a rollup query reads: by day, the whole days of the range from
/// `day` and the hours at either end from `hour`; otherwise `hour` alone.
fn ranges(
    q: &RowQuery,
    hour: &'static str,
    day: Option<&'static str>,
) -> Vec<(&'static str, DateTime<Utc>, DateTime<Utc>)> {
    let whole_days = day.filter(|_| q.interval == Interval::Day).and_then(|day| {
        let first = q.from.duration_trunc(TimeDelta::days(1)).ok()?;
        let first = if first < q.from {
            first + TimeDelta::days(1)
        } else {
            first
        };
        let last = q.to.duration_trunc(TimeDelta::days(1)).ok()?;
        (first < last).then_some((day, first, last))
    });
    match whole_days {
        Some((day, first, last)) => [
            (hour, q.from, first),
            (day, first, last),
            (hour, last, q.to),
        ]
        .into_iter()
        .filter(|(_, a, b)| a < b)
        .collect(),
        None => vec![(hour, q.from, q.to)],
    }
}

/// A `WHERE` clause built from conditions whose `?` become numbered parameters.
#[derive(Default)]
struct Where {
    clauses: Vec<String>,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Where {
    fn number(&mut self, clause: &str, first: usize) -> String {
        let mut n = first;
        let mut out = String::new();
        for part in clause.split_inclusive('?') {
            match part.strip_suffix('?') {
                Some(p) => {
                    out.push_str(&format!("{p}${n}"));
                    n += 1;
                }
                None => out.push_str(part),
            }
        }
        out
    }

    fn add(&mut self, clause: &str, v: Box<dyn ToSql + Sync + Send>) {
        self.values.push(v);
        let c = self.number(clause, self.values.len());
        self.clauses.push(c);
    }

    fn add2(
        &mut self,
        clause: &str,
        a: Box<dyn ToSql + Sync + Send>,
        b: Box<dyn ToSql + Sync + Send>,
    ) {
        self.values.push(a);
        self.values.push(b);
        let c = self.number(clause, self.values.len() - 1);
        self.clauses.push(c);
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "TRUE".into()
        } else {
            self.clauses.join(" AND ")
        }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

fn scope_key(scope: PriceScope) -> String {
    match scope {
        PriceScope::Operator => "*".into(),
        PriceScope::Project(p) => p.to_string(),
    }
}

impl UsageStore for PgStore {
    fn insert<'a>(
        &'a self,
        batch: &'a [RequestRecord],
    ) -> BoxFuture<'a, Result<usize, UsageError>> {
        self.insert_batch(batch).boxed()
    }

    fn rows<'a>(&'a self, q: &'a RowQuery) -> BoxFuture<'a, Result<Vec<Row>, UsageError>> {
        self.read_rows(q).boxed()
    }

    fn requests<'a>(
        &'a self,
        q: &'a LogQuery,
    ) -> BoxFuture<'a, Result<Vec<RequestRecord>, UsageError>> {
        self.read_log(q).boxed()
    }

    fn record(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<RequestRecord>, UsageError>> {
        async move {
            let client = self.reader().await?;
            let row = client
                .query_opt(
                    &format!("SELECT {RECORD_COLUMNS} FROM to11_requests WHERE project = $1 AND id = $2 LIMIT 1"),
                    &[&project, &id],
                )
                .await
                .map_err(err)?;
            Ok(row.as_ref().map(record_of))
        }
        .boxed()
    }

    fn prices(&self, scope: PriceScope) -> BoxFuture<'_, Result<Option<String>, UsageError>> {
        async move {
            let client = self.reader().await?;
            let row = client
                .query_opt(
                    "SELECT body FROM to11_prices WHERE scope = $1",
                    &[&scope_key(scope)],
                )
                .await
                .map_err(err)?;
            Ok(row.map(|r| r.get(0)))
        }
        .boxed()
    }

    fn set_prices<'a>(
        &'a self,
        scope: PriceScope,
        json: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), UsageError>> {
        async move {
            let client = self.reader().await?;
            match json {
                Some(body) => client
                    .execute(
                        "INSERT INTO to11_prices (scope, body) VALUES ($1, $2) \
                         ON CONFLICT (scope) DO UPDATE SET body = EXCLUDED.body, updated_at = now()",
                        &[&scope_key(scope), &body],
                    )
                    .await,
                None => client
                    .execute("DELETE FROM to11_prices WHERE scope = $1", &[&scope_key(scope)])
                    .await,
            }
            .map_err(err)?;
            Ok(())
        }
        .boxed()
    }

    fn all_prices(&self) -> BoxFuture<'_, Result<Vec<(PriceScope, String)>, UsageError>> {
        async move {
            let client = self.reader().await?;
            let rows = client
                .query("SELECT scope, body FROM to11_prices", &[])
                .await
                .map_err(err)?;
            Ok(rows
                .iter()
                .filter_map(|r| {
                    let scope: String = r.get(0);
                    let scope = match scope.as_str() {
                        "*" => PriceScope::Operator,
                        p => PriceScope::Project(p.parse().ok()?),
                    };
                    Some((scope, r.get(1)))
                })
                .collect())
        }
        .boxed()
    }

    fn maintain(
        &self,
        now: DateTime<Utc>,
        raw_days: u32,
        rollup_days: u32,
    ) -> BoxFuture<'_, Result<(), UsageError>> {
        self.maintain_now(now, raw_days, rollup_days).boxed()
    }
}
