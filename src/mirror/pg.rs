//! A mirror's store on PostgreSQL (issue 10, scope 4; spec/formats.md §15): the national mirror
//! of billions of licences does not fit one embedded store. Every source shares four tables:
//! `mirror_state` (per source: leaves mirrored, the tree's right edge, the last leaf's hash, the
//! verified checkpoint, a fork), `mirror_leaves` (source, index → leaf), and the derived view
//! `mirror_licences` (the state of each licence, as `LicenceState`), partitioned by the province
//! of the issuing department (its USCC's area code), so a province's licences can live on
//! their own tablespace or be moved, and queries by licence prune to one partition.
//!
//! A part is one transaction, guarded by the size it extends (`WHERE size = from`): a part
//! written twice (a retry after a lost answer, a failover) changes nothing the second time, and
//! the leaves' primary key refuses a duplicate. The connection string may name several hosts
//! with `target_session_attrs=read-write` (a primary and its streaming replicas): after a
//! failover the next round connects to the promoted replica, reads the state back, and fetches
//! again from the source whatever the old primary had not replicated.

use std::collections::HashMap;
use std::sync::Arc;

use tokio_postgres::{Client, NoTls};

use super::{Fork, Loaded, Part};
use crate::log::merkle::{CompactRange, Hash};
use crate::log::replay::LicenceState;

/// The provinces' codes (GB/T 2260, the first two digits of an area code): one partition each.
const PROVINCES: [i16; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63,
    64, 65, 71, 81, 82,
];

fn schema() -> String {
    let mut sql = String::from(
        "CREATE TABLE IF NOT EXISTS mirror_state (
            source text PRIMARY KEY,
            size bigint NOT NULL,
            peaks bytea NOT NULL,
            prev bytea NOT NULL,
            checkpoint text,
            fork jsonb);
         CREATE TABLE IF NOT EXISTS mirror_leaves (
            source text NOT NULL,
            idx bigint NOT NULL,
            leaf bytea NOT NULL,
            PRIMARY KEY (source, idx));
         CREATE TABLE IF NOT EXISTS mirror_licences (
            province smallint NOT NULL,
            id text NOT NULL,
            source text NOT NULL,
            state jsonb NOT NULL,
            PRIMARY KEY (province, id, source)) PARTITION BY LIST (province);
         CREATE TABLE IF NOT EXISTS mirror_licences_other PARTITION OF mirror_licences DEFAULT;\n",
    );
    for p in PROVINCES {
        sql += &format!(
            "CREATE TABLE IF NOT EXISTS mirror_licences_{p} PARTITION OF mirror_licences FOR VALUES IN ({p});\n"
        );
    }
    sql
}

/// The province of a licence: of its issuing department's USCC (0, the default partition, for an
/// identifier that does not parse).
pub fn province(id: &str) -> i16 {
    crate::domain::LicenceId::parse(id)
        .ok()
        .and_then(|l| l.issuer().as_str().get(2..4).and_then(|p| p.parse().ok()))
        .unwrap_or(0)
}

pub struct PgBackend {
    conn: String,
    /// Where verdicts read (`postgres_read`: a streaming replica), when not the primary.
    read_conn: Option<String>,
    /// Parts are written here, one transaction at a time.
    writer: tokio::sync::Mutex<Option<Client>>,
    /// The follower's reads of licence states, on the primary (a replica may not have the part
    /// just written yet); verdicts too, without `postgres_read`.
    reader: tokio::sync::Mutex<Option<Arc<Client>>>,
    /// Verdicts' reads on `read_conn`.
    replica: tokio::sync::Mutex<Option<Arc<Client>>>,
}

fn pg_err(e: tokio_postgres::Error) -> String {
    format!("PostgreSQL: {e}")
}

impl PgBackend {
    /// Connects and creates the tables when missing.
    pub async fn connect(conn: &str, read_conn: Option<&str>) -> Result<Self, String> {
        let backend = Self {
            conn: conn.to_string(),
            read_conn: read_conn.map(str::to_string),
            writer: Default::default(),
            reader: Default::default(),
            replica: Default::default(),
        };
        let client = backend.open().await?;
        client.batch_execute(&schema()).await.map_err(pg_err)?;
        *backend.writer.lock().await = Some(client);
        Ok(backend)
    }

    async fn open(&self) -> Result<Client, String> {
        Self::open_on(&self.conn).await
    }

    async fn open_on(conn: &str) -> Result<Client, String> {
        let (client, connection) = tokio_postgres::connect(conn, NoTls).await.map_err(pg_err)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "mirror: the PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// Whether verdicts read from `postgres_read` instead of the primary.
    pub(super) fn reads_replica(&self) -> bool {
        self.read_conn.is_some()
    }

    async fn reader(&self) -> Result<Arc<Client>, String> {
        Self::shared(&self.reader, &self.conn).await
    }

    /// The connection verdicts read on.
    async fn verdict_reader(&self) -> Result<Arc<Client>, String> {
        match &self.read_conn {
            Some(conn) => Self::shared(&self.replica, conn).await,
            None => self.reader().await,
        }
    }

    /// The connection kept in `slot`, opened on `conn` when there is none or it has closed.
    async fn shared(slot: &tokio::sync::Mutex<Option<Arc<Client>>>, conn: &str) -> Result<Arc<Client>, String> {
        let mut r = slot.lock().await;
        match r.as_ref() {
            Some(c) if !c.is_closed() => Ok(c.clone()),
            _ => {
                let c = Self::open_on(conn).await?;
                // A verdict waits for this connection: never long.
                c.batch_execute("SET statement_timeout = 5000").await.map_err(pg_err)?;
                let c = Arc::new(c);
                *r = Some(c.clone());
                Ok(c)
            }
        }
    }

    /// The writer connection, opened again when it has closed (a failover).
    async fn writer(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, String> {
        let mut w = self.writer.lock().await;
        if w.as_ref().is_none_or(|c| c.is_closed()) {
            // The writer's connection closed (a failover, perhaps): verdicts must not go on
            // reading from a server that may no longer be the primary.
            *self.reader.lock().await = None;
            let client = self.open().await?;
            // Where a part's licence states are copied before they are merged into the table.
            client
                .batch_execute(
                    "CREATE TEMP TABLE IF NOT EXISTS mirror_licences_in (province smallint, id text, state text)
                     ON COMMIT DELETE ROWS",
                )
                .await
                .map_err(pg_err)?;
            *w = Some(client);
        }
        Ok(w)
    }

    pub(super) async fn load(&self, source: &str) -> Result<Loaded, String> {
        let mut w = self.writer().await?;
        let client = w.as_mut().ok_or("no PostgreSQL connection")?;
        client
            .execute(
                "INSERT INTO mirror_state (source, size, peaks, prev) VALUES ($1, 0, '', $2) ON CONFLICT DO NOTHING",
                &[&source, &vec![0u8; 32]],
            )
            .await
            .map_err(pg_err)?;
        let row = client
            .query_one(
                "SELECT size, peaks, prev, checkpoint, fork::text FROM mirror_state WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(pg_err)?;
        let size: i64 = row.get(0);
        let peaks: Vec<u8> = row.get(1);
        let prev: Vec<u8> = row.get(2);
        let peaks: Vec<Hash> = peaks.chunks(32).map(|c| c.try_into().unwrap_or_default()).collect();
        let tree =
            CompactRange::from_peaks(size as u64, peaks).map_err(|e| format!("mirror_state of {source}: {e}"))?;
        let prev: Hash = prev.try_into().map_err(|_| format!("mirror_state of {source}: prev is not 32 bytes"))?;
        let fork: Option<String> = row.get(4);
        let fork =
            fork.map(|f| serde_json::from_str::<Fork>(&f).map_err(|e| format!("fork record: {e}"))).transpose()?;
        Ok(Loaded { tree, prev, checkpoint: row.get(3), fork })
    }

    pub(super) async fn licence_states(
        &self,
        source: &str,
        ids: &[&str],
    ) -> Result<HashMap<String, LicenceState>, String> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        // One query a province (a source's licences are mostly of one): each prunes to its
        // partition, where a join over every partition would probe each one's index per id.
        let mut by_province: HashMap<i16, Vec<&str>> = HashMap::new();
        for id in ids {
            by_province.entry(province(id)).or_default().push(id);
        }
        let reader = self.reader().await?;
        let mut out = HashMap::new();
        for (p, ids) in by_province {
            let rows = reader
                .query(
                    "SELECT id, state::text FROM mirror_licences WHERE province = $1 AND source = $2 AND id = ANY($3)",
                    &[&p, &source, &ids],
                )
                .await
                .map_err(pg_err)?;
            for row in rows {
                let id: String = row.get(0);
                let state: String = row.get(1);
                let st = serde_json::from_str(&state).map_err(|e| format!("mirrored licence {id}: {e}"))?;
                out.insert(id, st);
            }
        }
        Ok(out)
    }

    /// A licence's state and the size it holds as of, in one statement (one snapshot).
    async fn licence(&self, source: &str, id: &str) -> Result<Option<(LicenceState, u64)>, String> {
        let row = self
            .verdict_reader()
            .await?
            .query_opt(
                "SELECT s.size, l.state::text FROM mirror_state s
                 LEFT JOIN mirror_licences l ON l.province = $2 AND l.id = $3 AND l.source = s.source
                 WHERE s.source = $1",
                &[&source, &province(id), &id],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = row else { return Ok(None) };
        let size: i64 = row.get(0);
        let state: Option<String> = row.get(1);
        state
            .map(|s| {
                serde_json::from_str(&s).map(|st| (st, size as u64)).map_err(|e| format!("mirrored licence {id}: {e}"))
            })
            .transpose()
    }

    /// [`PgBackend::licence`] from synchronous code (a verdict) on the server's multi-threaded
    /// runtime.
    pub(super) fn licence_blocking(&self, source: &str, id: &str) -> Result<Option<(LicenceState, u64)>, String> {
        let handle = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err("a PostgreSQL mirror is read only on a multi-threaded runtime".into());
        }
        tokio::task::block_in_place(|| handle.block_on(self.licence(source, id)))
    }

    pub(super) async fn commit(&self, source: &str, part: &Part) -> Result<(), String> {
        let mut w = self.writer().await?;
        let client = w.as_mut().ok_or("no PostgreSQL connection")?;
        let result = async {
            let tx = client.transaction().await.map_err(pg_err)?;
            let peaks: Vec<u8> = part.tree.peaks().concat();
            let moved = tx
                .execute(
                    "UPDATE mirror_state SET size = $2, peaks = $3, prev = $4, checkpoint = $5
                     WHERE source = $1 AND size = $6",
                    &[
                        &source,
                        &(part.tree.size() as i64),
                        &peaks,
                        &part.prev.to_vec(),
                        &part.checkpoint,
                        &(part.from as i64),
                    ],
                )
                .await
                .map_err(pg_err)?;
            if moved != 1 {
                return Err(format!(
                    "the mirrored state of {source} is no longer at {} leaves (another writer, or a failover): read again",
                    part.from
                ));
            }
            // The leaves by binary COPY: no conflict is possible once the state moved from
            // `from`, and the primary key still refuses a leaf twice.
            {
                use tokio_postgres::binary_copy::BinaryCopyInWriter;
                use tokio_postgres::types::Type;
                let sink = tx.copy_in("COPY mirror_leaves (source, idx, leaf) FROM STDIN BINARY").await.map_err(pg_err)?;
                let writer = BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::INT8, Type::BYTEA]);
                futures_util::pin_mut!(writer);
                for (i, leaf) in part.leaves.iter().enumerate() {
                    let idx = part.from as i64 + i as i64;
                    writer.as_mut().write(&[&source, &idx, leaf]).await.map_err(pg_err)?;
                }
                writer.finish().await.map_err(pg_err)?;
            }
            // The states by binary COPY into the session's table, then merged in one statement.
            {
                use tokio_postgres::binary_copy::BinaryCopyInWriter;
                use tokio_postgres::types::Type;
                let sink = tx.copy_in("COPY mirror_licences_in FROM STDIN BINARY").await.map_err(pg_err)?;
                let writer = BinaryCopyInWriter::new(sink, &[Type::INT2, Type::TEXT, Type::TEXT]);
                futures_util::pin_mut!(writer);
                for (id, st) in part.states.iter() {
                    let state = serde_json::to_string(st).map_err(|e| e.to_string())?;
                    writer.as_mut().write(&[&province(id), id, &state]).await.map_err(pg_err)?;
                }
                writer.finish().await.map_err(pg_err)?;
            }
            tx.execute(
                "INSERT INTO mirror_licences (province, id, source, state)
                 SELECT province, id, $1, state::jsonb FROM mirror_licences_in
                 ON CONFLICT (province, id, source) DO UPDATE SET state = excluded.state",
                &[&source],
            )
            .await
            .map_err(pg_err)?;
            tx.commit().await.map_err(pg_err)
        }
        .await;
        if result.is_err() && client.is_closed() {
            *w = None;
        }
        result
    }

    pub(super) async fn record_fork(&self, source: &str, fork: &Fork) -> Result<(), String> {
        let mut w = self.writer().await?;
        let client = w.as_mut().ok_or("no PostgreSQL connection")?;
        let json = serde_json::to_string(fork).map_err(|e| e.to_string())?;
        client
            .execute("UPDATE mirror_state SET fork = $2::text::jsonb WHERE source = $1", &[&source, &json])
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}
