//! `licvault import`: migrating a department's existing licences through `POST
//! /v1/licences/batch` (issue 9, scope 4). The file is JSON lines, each the body of `POST
//! /v1/licences` (with `issue_date`, the original 发证日期, and the legacy `number`), plus an
//! optional `key`. Legacy values are mapped through the department's table before sending. Every
//! line has an Idempotency-Key (its `key`, else the SHA-256 of the line), so a second run issues
//! nothing twice; the report (JSON lines, one per line of the file) records each outcome, and a
//! second run skips the lines it says were issued.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `--map`: for each face field, legacy values and the catalogue's.
type ValueMap = BTreeMap<String, BTreeMap<String, String>>;

/// One line's outcome, as the report keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct Outcome {
    line: usize,
    key: String,
    /// `issued`, `replayed` or `refused`.
    outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl Outcome {
    /// A line refused here, before it was sent.
    fn refused(line: usize, key: String, code: &str, detail: String) -> Self {
        Self { line, key, outcome: "refused".into(), id: None, code: Some(code.into()), detail: Some(detail) }
    }
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: usize,
    pub issued: usize,
    pub replayed: usize,
    /// Lines the report already had as issued.
    pub skipped: usize,
    pub refused: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lines: {} issued, {} already issued (replayed), {} skipped (issued in an earlier run), {} refused",
            self.lines, self.issued, self.replayed, self.skipped, self.refused
        )
    }
}

/// The line as a licence body with its key: legacy values mapped.
fn prepare(line: &str, map: &ValueMap) -> Result<(String, Value), (String, String)> {
    let key_of_line = || {
        use sha2::Digest;
        format!("import:{}", hex::encode(&sha2::Sha256::digest(line.trim().as_bytes())[..16]))
    };
    let mut v: Value = serde_json::from_str(line).map_err(|e| (key_of_line(), format!("not JSON: {e}")))?;
    let Some(obj) = v.as_object_mut() else { return Err((key_of_line(), "not a JSON object".into())) };
    let key = match obj.remove("key") {
        None => key_of_line(),
        Some(Value::String(k)) => k,
        Some(_) => return Err((key_of_line(), "`key` must be text".into())),
    };
    if let Some(Value::Object(fields)) = obj.get_mut("fields") {
        for (name, value) in fields.iter_mut() {
            if let (Some(table), Some(legacy)) = (map.get(name), value.as_str()) {
                if let Some(new) = table.get(legacy) {
                    *value = Value::String(new.clone());
                }
            }
        }
    }
    Ok((key, v))
}

/// Imports `file` into the vault at `url`.
pub async fn run(
    url: &str,
    token: &str,
    file: &Path,
    map: Option<&Path>,
    report: &Path,
    batch: usize,
) -> Result<Summary> {
    if !(1..=1_000).contains(&batch) {
        bail!("--batch is 1 to 1,000");
    }
    let map: ValueMap = match map {
        None => ValueMap::new(),
        Some(p) => {
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
                .with_context(|| {
                    format!("{}: a map is {{\"field\": {{\"legacy value\": \"catalogue value\"}}}}", p.display())
                })?
        }
    };
    // Lines an earlier run issued (by key): skipped.
    let mut issued_before = HashSet::new();
    if let Ok(f) = std::fs::File::open(report) {
        for line in std::io::BufReader::new(f).lines() {
            if let Ok(o) = serde_json::from_str::<Outcome>(&line?) {
                if o.outcome != "refused" {
                    issued_before.insert(o.key);
                }
            }
        }
    }
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l)).filter(|(_, l)| !l.trim().is_empty()).collect();
    let mut out = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(report)
            .with_context(|| format!("opening {}", report.display()))?,
    );
    let bar = indicatif::ProgressBar::new(lines.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} lines [{bar:40}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let http = reqwest::Client::new();
    let endpoint = format!("{}/v1/licences/batch", url.trim_end_matches('/'));
    let mut summary = Summary { lines: lines.len(), ..Summary::default() };
    let mut in_flight: std::collections::VecDeque<InFlight> = std::collections::VecDeque::new();
    for chunk in lines.chunks(batch) {
        let mut items = Vec::new();
        let mut sent: Vec<(usize, String)> = Vec::new();
        for (n, line) in chunk {
            match prepare(line, &map) {
                Ok((key, _)) if issued_before.contains(&key) => summary.skipped += 1,
                // The same key twice in one request would refuse the whole request.
                Ok((key, _)) if sent.iter().any(|(_, k)| k.trim() == key.trim()) => record(
                    &mut out,
                    &mut summary,
                    Outcome::refused(
                        *n,
                        key,
                        "duplicate_key",
                        "an earlier line of this batch has the same key (or is the same line)".into(),
                    ),
                )?,
                Ok((key, licence)) => {
                    items.push(json!({"key": key, "licence": licence}));
                    sent.push((*n, key));
                }
                Err((key, why)) => record(&mut out, &mut summary, Outcome::refused(*n, key, "invalid_line", why))?,
            }
        }
        if !items.is_empty() {
            // Two requests in flight: the server signs one batch while the next is on its way.
            if in_flight.len() == IN_FLIGHT {
                let (sent, answer, lines) = in_flight.pop_front().expect("a request in flight");
                let answered = answer.await.context("a request task failed")?;
                take_answer(&endpoint, sent, answered, &mut out, &mut summary)?;
                bar.inc(lines);
            }
            let body = serde_json::to_vec(&json!({ "items": items }))?;
            let (http, endpoint, token) = (http.clone(), endpoint.clone(), token.to_string());
            let answer = tokio::spawn(async move {
                // Every item carries its Idempotency-Key: a request whose answer was lost to the
                // connection (a keep-alive connection closed under it) is sent again safely.
                let mut attempt = 0;
                loop {
                    let sent = http
                        .post(&endpoint)
                        .bearer_auth(&token)
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(res) => {
                            let status = res.status();
                            return Ok::<_, reqwest::Error>((status, res.text().await?));
                        }
                        Err(e) if attempt < 3 && (e.is_connect() || e.is_request()) => {
                            attempt += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
            });
            in_flight.push_back((sent, answer, chunk.len() as u64));
        } else {
            bar.inc(chunk.len() as u64);
        }
    }
    while let Some((sent, answer, lines)) = in_flight.pop_front() {
        let answered = answer.await.context("a request task failed")?;
        take_answer(&endpoint, sent, answered, &mut out, &mut summary)?;
        bar.inc(lines);
    }
    out.flush()?;
    bar.finish_and_clear();
    Ok(summary)
}

/// Requests a migration keeps in flight.
const IN_FLIGHT: usize = 2;

/// A batch request on its way: the (line, key) of each item sent, the answer, the lines it covers.
type InFlight = (Vec<(usize, String)>, tokio::task::JoinHandle<reqwest::Result<(reqwest::StatusCode, String)>>, u64);

/// Records the outcome of every item of one answered batch request, in the order sent. A batch
/// refused whole (a token, a body over the limit: try a smaller --batch…) stops the import: the
/// report holds everything done so far.
fn take_answer(
    endpoint: &str,
    sent: Vec<(usize, String)>,
    answered: reqwest::Result<(reqwest::StatusCode, String)>,
    out: &mut impl Write,
    summary: &mut Summary,
) -> Result<()> {
    let (status, text) = answered.with_context(|| format!("posting to {endpoint}"))?;
    if !status.is_success() {
        out.flush()?;
        bail!("{endpoint}: {status}: {text}");
    }
    let body: Value = serde_json::from_str(&text).with_context(|| format!("{endpoint}: {status}: not JSON"))?;
    let results = body["results"].as_array().context("the answer has no results")?;
    if results.len() != sent.len() {
        out.flush()?;
        bail!("{endpoint}: {} results for {} items", results.len(), sent.len());
    }
    for ((n, key), r) in sent.into_iter().zip(results) {
        let text = |k: &str| r[k].as_str().map(str::to_string);
        record(
            out,
            summary,
            Outcome {
                line: n,
                key,
                outcome: text("outcome").unwrap_or_else(|| "refused".into()),
                id: text("id"),
                code: text("code"),
                detail: text("detail"),
            },
        )?;
    }
    Ok(())
}

/// Counts one line's outcome and writes it to the report.
fn record(out: &mut impl Write, summary: &mut Summary, o: Outcome) -> Result<()> {
    match o.outcome.as_str() {
        "issued" => summary.issued += 1,
        "replayed" => summary.replayed += 1,
        _ => summary.refused += 1,
    }
    serde_json::to_writer(&mut *out, &o)?;
    out.write_all(b"\n")?;
    Ok(())
}
