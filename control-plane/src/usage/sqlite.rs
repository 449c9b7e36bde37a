//! The usage store in SQLite (embedded mode: a file in the data directory, no external
//! service). The same tables as PostgreSQL's, without partitions (retention deletes by time);
//! times as Unix microseconds, ids as text, tags as JSON text. A batch is one transaction
//! (`INSERT OR IGNORE` per record, one upsert per rollup row), run off the async threads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::types::Value as Sql;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use to11_shared::record::RequestRecord;
use to11_shared::usage::Usage;
use uuid::Uuid;

use super::query::{LogQuery, RowQuery, StatusFilter, Table};
use super::rollup::{rollups, Dims, Sums, BUCKETS};
use super::{PriceScope, Row, UsageError, UsageStore};

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
        .map(|c| format!("{c} INTEGER NOT NULL DEFAULT 0, "))
        .collect();
    format!(
        "PRAGMA journal_mode = WAL;
        PRAGMA synchronous = NORMAL;
        CREATE TABLE IF NOT EXISTS requests (
            ts INTEGER NOT NULL, id TEXT NOT NULL PRIMARY KEY, project TEXT NOT NULL, key TEXT NOT NULL,
            surface TEXT NOT NULL, requested_model TEXT NOT NULL, layer TEXT NOT NULL,
            function TEXT, route TEXT, provider TEXT, provider_kind TEXT, model TEXT,
            stream INTEGER NOT NULL, status INTEGER NOT NULL, error TEXT, attempts INTEGER NOT NULL,
            failed TEXT, latency_us INTEGER NOT NULL, ttfb_us INTEGER,
            input INTEGER, output INTEGER, cache_read INTEGER, cache_write INTEGER,
            cache_write_1h INTEGER, reasoning INTEGER, usage_source TEXT,
            cancelled INTEGER NOT NULL, cost INTEGER, end_user TEXT, tags TEXT);
        CREATE INDEX IF NOT EXISTS requests_by_project ON requests (project, ts DESC, id DESC);
        CREATE INDEX IF NOT EXISTS requests_by_model ON requests (project, model, ts DESC);
        CREATE INDEX IF NOT EXISTS requests_by_time ON requests (ts);
        CREATE TABLE IF NOT EXISTS usage_minute (bucket INTEGER NOT NULL, project TEXT NOT NULL,
            key TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, route TEXT NOT NULL, {sums}
            PRIMARY KEY (project, bucket, key, model, provider, route));
        CREATE TABLE IF NOT EXISTS usage_hour (bucket INTEGER NOT NULL, project TEXT NOT NULL,
            key TEXT NOT NULL, model TEXT NOT NULL, provider TEXT NOT NULL, route TEXT NOT NULL, {sums}
            PRIMARY KEY (project, bucket, key, model, provider, route));
        CREATE TABLE IF NOT EXISTS usage_hour_user (bucket INTEGER NOT NULL, project TEXT NOT NULL,
            end_user TEXT NOT NULL, {sums} PRIMARY KEY (project, bucket, end_user));
        CREATE TABLE IF NOT EXISTS usage_hour_tag (bucket INTEGER NOT NULL, project TEXT NOT NULL,
            tag TEXT NOT NULL, value TEXT NOT NULL, {sums} PRIMARY KEY (project, bucket, tag, value));
        CREATE TABLE IF NOT EXISTS prices (scope TEXT PRIMARY KEY, body TEXT NOT NULL);"
    )
}

fn err(e: rusqlite::Error) -> UsageError {
    UsageError::Query(e.to_string())
}

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore, UsageError> {
        let conn = Connection::open(path).map_err(|e| UsageError::Unavailable(e.to_string()))?;
        conn.execute_batch(&schema()).map_err(err)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, off the async threads.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, UsageError> + Send + 'static,
    ) -> Result<T, UsageError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn
                .lock()
                .map_err(|_| UsageError::Unavailable("the usage database is poisoned".into()))?;
            f(&mut c)
        })
        .await
        .map_err(|e| UsageError::Unavailable(e.to_string()))?
    }
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn opt_i(v: Option<u64>) -> Sql {
    v.map(|v| Sql::Integer(v as i64)).unwrap_or(Sql::Null)
}

fn opt_t(v: &Option<String>) -> Sql {
    v.clone().map(Sql::Text).unwrap_or(Sql::Null)
}

fn record_values(r: &RequestRecord) -> Vec<Sql> {
    let u = r.usage.as_ref();
    vec![
        Sql::Integer(micros(r.time)),
        Sql::Text(r.id.to_string()),
        Sql::Text(r.project.to_string()),
        Sql::Text(r.key.to_string()),
        Sql::Text(r.surface.to_string()),
        Sql::Text(r.requested_model.clone()),
        Sql::Text(r.layer.to_string()),
        opt_t(&r.function),
        opt_t(&r.route),
        opt_t(&r.provider),
        opt_t(&r.provider_kind),
        opt_t(&r.model),
        Sql::Integer(i64::from(r.stream)),
        Sql::Integer(i64::from(r.status)),
        opt_t(&r.error),
        Sql::Integer(i64::from(r.attempts)),
        if r.failed.is_empty() {
            Sql::Null
        } else {
            Sql::Text(serde_json::json!(r.failed).to_string())
        },
        Sql::Integer(r.latency_us as i64),
        opt_i(r.ttfb_us),
        opt_i(u.map(|u| u.input)),
        opt_i(u.map(|u| u.output)),
        opt_i(u.map(|u| u.cache_read)),
        opt_i(u.map(|u| u.cache_write)),
        opt_i(u.map(|u| u.cache_write_1h)),
        opt_i(u.map(|u| u.reasoning)),
        opt_t(
            &r.usage_source
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|v| v.as_str().map(str::to_string)),
        ),
        Sql::Integer(i64::from(r.cancelled)),
        opt_i(r.cost),
        opt_t(&r.user),
        if r.tags.is_empty() {
            Sql::Null
        } else {
            Sql::Text(serde_json::json!(r.tags).to_string())
        },
    ]
}

const RECORD_COLUMNS: &str = "ts, id, project, key, surface, requested_model, layer, function, \
    route, provider, provider_kind, model, stream, status, error, attempts, failed, latency_us, \
    ttfb_us, input, output, cache_read, cache_write, cache_write_1h, reasoning, usage_source, \
    cancelled, cost, end_user, tags";

fn sum_values(s: &Sums) -> Vec<Sql> {
    [
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
    ]
    .iter()
    .chain(s.hist.iter())
    .map(|v| Sql::Integer(*v))
    .collect()
}

/// `INSERT … ON CONFLICT (keys) DO UPDATE` adding the sums.
fn upsert_sql(table: &str, dims: &[&str]) -> String {
    let cols = sum_columns();
    let all: Vec<String> = dims
        .iter()
        .map(|d| d.to_string())
        .chain(cols.iter().cloned())
        .collect();
    let marks = vec!["?"; all.len()].join(", ");
    let set = cols
        .iter()
        .map(|c| format!("{c} = {c} + excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let keys = dims.join(", ");
    format!(
        "INSERT INTO {table} ({}) VALUES ({marks}) ON CONFLICT ({keys}) DO UPDATE SET {set}",
        all.join(", ")
    )
}

fn dims_values(bucket: DateTime<Utc>, d: &Dims) -> Vec<Sql> {
    vec![
        Sql::Integer(micros(bucket)),
        Sql::Text(d.project.to_string()),
        Sql::Text(d.key.to_string()),
        Sql::Text(d.model.clone()),
        Sql::Text(d.provider.clone()),
        Sql::Text(d.route.clone()),
    ]
}

fn insert_batch(c: &mut Connection, batch: &[RequestRecord]) -> Result<usize, UsageError> {
    let tx = c.transaction().map_err(err)?;
    let mut fresh = Vec::new();
    {
        let marks = vec!["?"; 30].join(", ");
        let mut st = tx
            .prepare_cached(&format!(
                "INSERT OR IGNORE INTO requests ({RECORD_COLUMNS}) VALUES ({marks})"
            ))
            .map_err(err)?;
        for r in batch {
            if st
                .execute(params_from_iter(record_values(r)))
                .map_err(err)?
                == 1
            {
                fresh.push(r.clone());
            }
        }
        let r = rollups(&fresh);
        let main = ["bucket", "project", "key", "model", "provider", "route"];
        for (table, rows) in [("usage_minute", &r.minute), ("usage_hour", &r.hour)] {
            let mut st = tx.prepare_cached(&upsert_sql(table, &main)).map_err(err)?;
            for (t, d, s) in rows {
                let mut v = dims_values(*t, d);
                v.extend(sum_values(s));
                st.execute(params_from_iter(v)).map_err(err)?;
            }
        }
        let mut st = tx
            .prepare_cached(&upsert_sql(
                "usage_hour_user",
                &["bucket", "project", "end_user"],
            ))
            .map_err(err)?;
        for (t, p, u, s) in &r.user {
            let mut v = vec![
                Sql::Integer(micros(*t)),
                Sql::Text(p.to_string()),
                Sql::Text(u.clone()),
            ];
            v.extend(sum_values(s));
            st.execute(params_from_iter(v)).map_err(err)?;
        }
        let mut st = tx
            .prepare_cached(&upsert_sql(
                "usage_hour_tag",
                &["bucket", "project", "tag", "value"],
            ))
            .map_err(err)?;
        for (t, p, k, val, s) in &r.tag {
            let mut v = vec![
                Sql::Integer(micros(*t)),
                Sql::Text(p.to_string()),
                Sql::Text(k.clone()),
                Sql::Text(val.clone()),
            ];
            v.extend(sum_values(s));
            st.execute(params_from_iter(v)).map_err(err)?;
        }
    }
    tx.commit().map_err(err)?;
    Ok(fresh.len())
}

fn time_of(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

fn uuid_of(s: String) -> Uuid {
    s.parse().unwrap_or_default()
}

fn sums_of(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Sums> {
    let g = |i: usize| row.get::<_, i64>(first + i);
    let mut hist = [0; BUCKETS];
    for (i, h) in hist.iter_mut().enumerate() {
        *h = g(11 + i)?;
    }
    Ok(Sums {
        requests: g(0)?,
        errors: g(1)?,
        input: g(2)?,
        output: g(3)?,
        cache_read: g(4)?,
        cache_write: g(5)?,
        reasoning: g(6)?,
        cost: g(7)?,
        unpriced: g(8)?,
        estimated: g(9)?,
        latency_us: g(10)?,
        hist,
    })
}

fn read_rows(c: &mut Connection, q: &RowQuery) -> Result<Vec<Row>, UsageError> {
    let cols = sum_columns().join(", ");
    let nil = Uuid::nil().to_string();
    let (sql, tag) = match &q.table {
        Table::Minute | Table::Hour => (
            format!(
                "SELECT bucket, project, key, model, provider, route, '', {cols} FROM {} \
                 WHERE (?1 IS NULL OR project = ?1) AND bucket >= ?2 AND bucket < ?3 AND ?4 IS NULL",
                if q.table == Table::Minute { "usage_minute" } else { "usage_hour" }
            ),
            None,
        ),
        Table::User => (
            format!(
                "SELECT bucket, project, '{nil}', '', '', '', end_user, {cols} FROM usage_hour_user \
                 WHERE (?1 IS NULL OR project = ?1) AND bucket >= ?2 AND bucket < ?3 AND ?4 IS NULL"
            ),
            None,
        ),
        Table::Tag(t) => (
            format!(
                "SELECT bucket, project, '{nil}', '', '', '', value, {cols} FROM usage_hour_tag \
                 WHERE (?1 IS NULL OR project = ?1) AND bucket >= ?2 AND bucket < ?3 AND tag = ?4"
            ),
            Some(t.clone()),
        ),
    };
    let mut st = c.prepare_cached(&sql).map_err(err)?;
    let rows = st
        .query_map(
            rusqlite::params![
                q.project.map(|p| p.to_string()),
                micros(q.from),
                micros(q.to),
                tag
            ],
            |r| {
                Ok(Row {
                    bucket: time_of(r.get(0)?),
                    project: uuid_of(r.get(1)?),
                    key: uuid_of(r.get(2)?),
                    model: r.get(3)?,
                    provider: r.get(4)?,
                    route: r.get(5)?,
                    label: r.get(6)?,
                    sums: sums_of(r, 7)?,
                })
            },
        )
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

fn record_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRecord> {
    let n = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|v| v as u64))
    };
    let usage = match n(19)? {
        Some(input) => Some(Usage {
            input,
            output: n(20)?.unwrap_or(0),
            cache_read: n(21)?.unwrap_or(0),
            cache_write: n(22)?.unwrap_or(0),
            cache_write_1h: n(23)?.unwrap_or(0),
            reasoning: n(24)?.unwrap_or(0),
        }),
        None => None,
    };
    let json = |i: usize| -> rusqlite::Result<Option<serde_json::Value>> {
        Ok(r.get::<_, Option<String>>(i)?
            .and_then(|s| serde_json::from_str(&s).ok()))
    };
    Ok(RequestRecord {
        time: time_of(r.get(0)?),
        id: uuid_of(r.get(1)?),
        project: uuid_of(r.get(2)?),
        key: uuid_of(r.get(3)?),
        surface: r.get::<_, String>(4)?.into(),
        requested_model: r.get(5)?,
        layer: r.get::<_, String>(6)?.into(),
        function: r.get(7)?,
        route: r.get(8)?,
        provider: r.get(9)?,
        provider_kind: r.get(10)?,
        model: r.get(11)?,
        stream: r.get::<_, i64>(12)? != 0,
        status: r.get::<_, i64>(13)? as u16,
        error: r.get(14)?,
        attempts: r.get::<_, i64>(15)? as u32,
        failed: json(16)?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
        latency_us: r.get::<_, i64>(17)? as u64,
        ttfb_us: n(18)?,
        usage,
        usage_source: r
            .get::<_, Option<String>>(25)?
            .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok()),
        cancelled: r.get::<_, i64>(26)? != 0,
        cost: n(27)?,
        user: r.get(28)?,
        tags: json(29)?
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default(),
    })
}

fn read_log(c: &mut Connection, q: &LogQuery) -> Result<Vec<RequestRecord>, UsageError> {
    let mut clauses: Vec<String> = vec![];
    let mut values: Vec<Sql> = vec![];
    let mut add = |clause: &str, v: Vec<Sql>| {
        clauses.push(clause.to_string());
        values.extend(v);
    };
    if let Some(p) = q.project {
        add("project = ?", vec![Sql::Text(p.to_string())]);
    }
    if let Some(t) = q.from {
        add("ts >= ?", vec![Sql::Integer(micros(t))]);
    }
    if let Some(t) = q.to {
        add("ts < ?", vec![Sql::Integer(micros(t))]);
    }
    if let Some((t, id)) = q.before {
        add(
            "(ts < ? OR (ts = ? AND id < ?))",
            vec![
                Sql::Integer(micros(t)),
                Sql::Integer(micros(t)),
                Sql::Text(id.to_string()),
            ],
        );
    }
    match q.status {
        Some(StatusFilter::Exact(s)) => add("status = ?", vec![Sql::Integer(i64::from(s))]),
        Some(StatusFilter::Class(c)) => add(
            "status >= ? AND status < ?",
            vec![Sql::Integer(i64::from(c)), Sql::Integer(i64::from(c) + 100)],
        ),
        Some(StatusFilter::Errors) => add("status >= 400", vec![]),
        None => {}
    }
    if let Some(m) = &q.model {
        add("model = ?", vec![Sql::Text(m.clone())]);
    }
    if let Some(p) = &q.provider {
        add("provider = ?", vec![Sql::Text(p.clone())]);
    }
    if let Some(k) = q.key {
        add("key = ?", vec![Sql::Text(k.to_string())]);
    }
    if let Some(u) = &q.user {
        add("end_user = ?", vec![Sql::Text(u.clone())]);
    }
    if let Some((n, v)) = &q.tag {
        let path = format!("$.\"{}\"", n.replace('"', ""));
        add(
            "json_extract(tags, ?) = ?",
            vec![Sql::Text(path), Sql::Text(v.clone())],
        );
    }
    let filter = if clauses.is_empty() {
        "1".to_string()
    } else {
        clauses.join(" AND ")
    };
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM requests WHERE {filter} ORDER BY ts DESC, id DESC LIMIT {}",
        q.limit
    );
    let mut st = c.prepare(&sql).map_err(err)?;
    let rows = st
        .query_map(params_from_iter(values), record_of)
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

fn scope_key(scope: PriceScope) -> String {
    match scope {
        PriceScope::Operator => "*".into(),
        PriceScope::Project(p) => p.to_string(),
    }
}

impl UsageStore for SqliteStore {
    fn insert<'a>(
        &'a self,
        batch: &'a [RequestRecord],
    ) -> BoxFuture<'a, Result<usize, UsageError>> {
        let batch = batch.to_vec();
        self.with(move |c| insert_batch(c, &batch)).boxed()
    }

    fn rows<'a>(&'a self, q: &'a RowQuery) -> BoxFuture<'a, Result<Vec<Row>, UsageError>> {
        let q = q.clone();
        self.with(move |c| read_rows(c, &q)).boxed()
    }

    fn requests<'a>(
        &'a self,
        q: &'a LogQuery,
    ) -> BoxFuture<'a, Result<Vec<RequestRecord>, UsageError>> {
        let q = q.clone();
        self.with(move |c| read_log(c, &q)).boxed()
    }

    fn record(
        &self,
        project: Uuid,
        id: Uuid,
    ) -> BoxFuture<'_, Result<Option<RequestRecord>, UsageError>> {
        self.with(move |c| {
            c.query_row(
                &format!("SELECT {RECORD_COLUMNS} FROM requests WHERE project = ? AND id = ?"),
                [project.to_string(), id.to_string()],
                record_of,
            )
            .optional()
            .map_err(err)
        })
        .boxed()
    }

    fn prices(&self, scope: PriceScope) -> BoxFuture<'_, Result<Option<String>, UsageError>> {
        self.with(move |c| {
            c.query_row(
                "SELECT body FROM prices WHERE scope = ?",
                [scope_key(scope)],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)
        })
        .boxed()
    }

    fn set_prices<'a>(
        &'a self,
        scope: PriceScope,
        json: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), UsageError>> {
        let json = json.map(str::to_string);
        self.with(move |c| {
            match json {
                Some(body) => c.execute(
                    "INSERT INTO prices (scope, body) VALUES (?1, ?2) \
                     ON CONFLICT (scope) DO UPDATE SET body = excluded.body",
                    [scope_key(scope), body],
                ),
                None => c.execute("DELETE FROM prices WHERE scope = ?", [scope_key(scope)]),
            }
            .map_err(err)?;
            Ok(())
        })
        .boxed()
    }

    fn all_prices(&self) -> BoxFuture<'_, Result<Vec<(PriceScope, String)>, UsageError>> {
        self.with(|c| {
            let mut st = c.prepare("SELECT scope, body FROM prices").map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(err)?;
            let mut out = vec![];
            for row in rows {
                let (scope, body) = row.map_err(err)?;
                let scope = match scope.as_str() {
                    "*" => PriceScope::Operator,
                    p => match p.parse() {
                        Ok(id) => PriceScope::Project(id),
                        Err(_) => continue,
                    },
                };
                out.push((scope, body));
            }
            Ok(out)
        })
        .boxed()
    }

    fn maintain(
        &self,
        now: DateTime<Utc>,
        raw_days: u32,
        rollup_days: u32,
    ) -> BoxFuture<'_, Result<(), UsageError>> {
        self.with(move |c| {
            let raw = micros(now - TimeDelta::days(i64::from(raw_days)));
            let minute = micros(now - TimeDelta::days(i64::from(raw_days.min(7))));
            let rollup = micros(now - TimeDelta::days(i64::from(rollup_days)));
            c.execute("DELETE FROM requests WHERE ts < ?", [raw])
                .map_err(err)?;
            c.execute("DELETE FROM usage_minute WHERE bucket < ?", [minute])
                .map_err(err)?;
            for t in ["usage_hour", "usage_hour_user", "usage_hour_tag"] {
                c.execute(&format!("DELETE FROM {t} WHERE bucket < ?"), [rollup])
                    .map_err(err)?;
            }
            Ok(())
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::query::{Interval, Keep, LogQuery, StatusFilter};
    use crate::usage::rollup::tests::record;

    fn store() -> (SqliteStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("to11-usage-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        (SqliteStore::open(&dir.join("usage.db")).expect("open"), dir)
    }

    fn log(project: Option<Uuid>) -> LogQuery {
        LogQuery {
            project,
            from: None,
            to: None,
            before: None,
            limit: 50,
            status: None,
            model: None,
            provider: None,
            key: None,
            user: None,
            tag: None,
        }
    }

    #[actix_rt::test]
    async fn a_batch_is_stored_once_and_rolled_up_once() {
        let (s, dir) = store();
        let batch: Vec<RequestRecord> = (0..10)
            .map(|i| {
                record(
                    i,
                    i as i64 * 7,
                    "m1",
                    if i % 5 == 0 { 500 } else { 200 },
                    30,
                )
            })
            .collect();
        assert_eq!(s.insert(&batch).await.expect("insert"), 10);
        assert_eq!(
            s.insert(&batch).await.expect("again"),
            0,
            "a retried batch is skipped"
        );
        let q = RowQuery {
            table: Table::Hour,
            project: None,
            from: DateTime::from_timestamp(0, 0).expect("t"),
            to: DateTime::from_timestamp(2_000_000_000, 0).expect("t"),
            interval: Interval::Hour,
            keep: Keep::default(),
        };
        let rows = s.rows(&q).await.expect("rows");
        let total: i64 = rows.iter().map(|r| r.sums.requests).sum();
        let errors: i64 = rows.iter().map(|r| r.sums.errors).sum();
        assert_eq!((total, errors), (10, 2));
        let mut page = log(Some(Uuid::from_u128(1)));
        page.limit = 4;
        let first = s.requests(&page).await.expect("log");
        assert_eq!(first.len(), 4);
        assert!(
            first.windows(2).all(|w| w[0].time >= w[1].time),
            "newest first"
        );
        let last = first.last().expect("last");
        page.before = Some((last.time, last.id));
        let second = s.requests(&page).await.expect("log");
        assert!(second.iter().all(|r| r.time < last.time));
        let mut errors_only = log(Some(Uuid::from_u128(1)));
        errors_only.status = Some(StatusFilter::Errors);
        assert_eq!(s.requests(&errors_only).await.expect("log").len(), 2);
        let mut tagged = log(None);
        tagged.tag = Some(("team".into(), "a".into()));
        assert_eq!(s.requests(&tagged).await.expect("log").len(), 10);
        assert!(s
            .requests(&log(Some(Uuid::from_u128(99))))
            .await
            .expect("log")
            .is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
