//! Every example in spec/openapi.yaml is valid: each licence identifier, type code, holder number,
//! USCC, date and piece of free text (names, reasons, numbers) in it passes the parser a request
//! goes through. The spec writes every `example:` (and `examples:`) value as JSON on one line, so
//! a line scanner reads them without a YAML parser; a value written any other way fails the test.
//! Licence identifiers are checked wherever they appear in the file, descriptions included. The
//! request bodies under fixtures/examples/ are JSON and pass the same checks.

use std::path::Path;

use licvault::domain::licence_id::ROOT;
use licvault::domain::{parse_date, parse_validity_date, text, HolderId, LicenceId, TypeCode, Uscc};
use serde_json::Value;

use crate::common::root;

/// What a string in an example is, judged by its key and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LicenceId,
    TypeCode,
    /// 18 characters: a number of any holder type that takes it (citizen, residence permit,
    /// permanent-residence card, USCC).
    HolderNumber,
    Uscc,
    Date,
    /// `valid_from` / `valid_until`: a date a licence can carry.
    ValidityDate,
    /// Free text under the text rule, at most this many characters: `name`, `holder_name`,
    /// `reason`, `number`.
    Text(usize),
}

fn is_date_shape(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() })
}

fn upper_alnum(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
}

fn kind_of(key: &str, s: &str) -> Option<Kind> {
    if s.starts_with(&format!("{ROOT}.")) {
        Some(Kind::LicenceId)
    } else if key == "uscc" {
        Some(Kind::Uscc)
    } else if key == "valid_from" || key == "valid_until" {
        Some(Kind::ValidityDate)
    } else if key == "name" || key == "holder_name" {
        Some(Kind::Text(100))
    } else if key == "reason" {
        Some(Kind::Text(200))
    } else if key == "number" {
        Some(Kind::Text(64))
    } else if is_date_shape(s) {
        Some(Kind::Date)
    } else if key == "type_code" || (s.len() == 21 && upper_alnum(s) && s.bytes().skip(18).all(|b| b.is_ascii_digit()))
    {
        Some(Kind::TypeCode)
    } else if s.len() == 18 && upper_alnum(s) {
        Some(Kind::HolderNumber)
    } else {
        None
    }
}

fn check(kind: Kind, key: &str, s: &str) -> Result<(), String> {
    match kind {
        Kind::LicenceId => LicenceId::parse(s).map(|_| ()).map_err(|e| e.to_string()),
        Kind::TypeCode => TypeCode::parse(s).map(|_| ()).map_err(|e| e.to_string()),
        Kind::Uscc => Uscc::parse(s).map(|_| ()).map_err(|e| e.to_string()),
        Kind::HolderNumber => {
            let tried: Vec<_> =
                licvault::domain::HolderType::ALL.into_iter().map(|t| HolderId::parse_typed(t, s)).collect();
            if tried.iter().any(Result::is_ok) {
                Ok(())
            } else {
                let why: Vec<String> = tried.iter().filter_map(|r| r.as_ref().err()).map(ToString::to_string).collect();
                Err(format!("no holder type takes it ({})", why.join("; ")))
            }
        }
        Kind::Date => parse_date(s).map(|_| ()).ok_or_else(|| "not a calendar date YYYY-MM-DD".to_string()),
        Kind::ValidityDate => parse_validity_date(key, s).map(|_| ()),
        Kind::Text(max) => match text::clean(key, s, max) {
            Ok(clean) if clean == s => Ok(()),
            Ok(clean) => Err(format!("the server would store it as {clean:?}: write it so")),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// Walks example values, checks what it recognises and counts it.
#[derive(Default)]
struct Checker {
    counts: Vec<(Kind, usize)>,
    errors: Vec<String>,
}

impl Checker {
    fn count(&mut self, kind: Kind) {
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((kind, 1)),
        }
    }

    fn seen(&self, kind: Kind) -> usize {
        self.counts.iter().find(|(k, _)| *k == kind).map_or(0, |(_, n)| *n)
    }

    fn string(&mut self, at: &str, key: &str, s: &str) {
        if let Some(kind) = kind_of(key, s) {
            self.count(kind);
            if let Err(why) = check(kind, key, s) {
                self.errors.push(format!("{at}: {kind:?} {s:?}: {why}"));
            }
        }
    }

    fn value(&mut self, at: &str, key: &str, v: &Value) {
        match v {
            Value::String(s) => self.string(at, key, s),
            Value::Array(items) => items.iter().for_each(|item| self.value(at, key, item)),
            Value::Object(map) => {
                // A holder: `{"type": "111" | "001", "id": ..., ...}`, checked as its type says.
                let holder = match (map.get("type"), map.get("id")) {
                    (Some(Value::String(t)), Some(Value::String(id))) if t == "111" || t == "001" => Some((t, id)),
                    _ => None,
                };
                if let Some((t, id)) = holder {
                    self.count(Kind::HolderNumber);
                    if let Err(e) = HolderId::parse(t, id) {
                        self.errors.push(format!("{at}: holder of type {t} {id:?}: {e}"));
                    }
                }
                for (k, v) in map {
                    if holder.is_some() && (k == "id" || k == "type") {
                        continue;
                    }
                    self.value(at, k, v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// The values of the `example:` and `examples:` keys on one line of YAML, each of which must be
/// JSON written on that line.
fn examples_on(line: &str) -> Vec<Result<Value, String>> {
    let mut out = Vec::new();
    for key in ["example:", "examples:"] {
        let mut from = 0;
        while let Some(i) = line[from..].find(key) {
            let at = from + i;
            from = at + key.len();
            // A key starts the line or follows `{`, `,` or a space; `x-example:` is not ours.
            if !matches!(line[..at].chars().next_back(), None | Some(' ' | '{' | ',')) {
                continue;
            }
            let rest = line[from..].trim_start();
            out.push(match serde_json::Deserializer::from_str(rest).into_iter::<Value>().next() {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(format!("`{key}` is not followed by JSON on the same line ({e})")),
                None => Err(format!("`{key}` has no value on its line: write examples as one-line JSON")),
            });
        }
    }
    out
}

/// Every licence identifier written anywhere in `doc`: a run of `0-9A-Za-z.` starting at the
/// root arc. The bare root (`1.2.156.3005.2.` in prose) is not an identifier.
fn licence_ids_in(doc: &str) -> Vec<&str> {
    let prefix = format!("{ROOT}.");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = doc[from..].find(&prefix) {
        let start = from + i;
        let len = doc[start..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '.')).unwrap_or(doc.len() - start);
        let token = doc[start..start + len].trim_end_matches('.');
        if token != ROOT {
            out.push(token);
        }
        from = start + len;
    }
    out
}

#[test]
fn every_example_in_the_spec_is_valid() {
    let spec = std::fs::read_to_string(root().join("spec/openapi.yaml")).unwrap();
    let mut checker = Checker::default();
    let mut examples = 0;
    for (n, line) in spec.lines().enumerate() {
        let at = format!("spec/openapi.yaml:{}", n + 1);
        for found in examples_on(line) {
            examples += 1;
            match found {
                Ok(v) => checker.value(&at, "", &v),
                Err(why) => checker.errors.push(format!("{at}: {why}")),
            }
        }
    }
    for id in licence_ids_in(&spec) {
        checker.string("spec/openapi.yaml", "", id);
    }
    assert!(checker.errors.is_empty(), "invalid examples:\n{}", checker.errors.join("\n"));
    // The scan must have found something of each kind, or it checks nothing.
    assert!(examples >= 10, "only {examples} examples found: is the scanner still reading the spec?");
    for kind in [
        Kind::LicenceId,
        Kind::TypeCode,
        Kind::HolderNumber,
        Kind::Uscc,
        Kind::Date,
        Kind::ValidityDate,
        Kind::Text(100),
        Kind::Text(200),
    ] {
        assert!(checker.seen(kind) > 0, "no {kind:?} among the spec's examples");
    }
}

#[test]
fn example_request_bodies_are_json_and_valid() {
    let dir = root().join("fixtures/examples");
    let mut files = 0;
    let mut checker = Checker::default();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        files += 1;
        let at = path.strip_prefix(root()).unwrap_or(Path::new("?")).display().to_string();
        match serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()) {
            Ok(v) => checker.value(&at, "", &v),
            Err(e) => checker.errors.push(format!("{at}: not JSON: {e}")),
        }
    }
    assert!(files > 0, "no JSON files in {}", dir.display());
    assert!(checker.errors.is_empty(), "invalid example bodies:\n{}", checker.errors.join("\n"));
}

#[test]
fn the_scanner_catches_a_wrong_check_character() {
    // The example identifier the spec carried before: its check character is X, not L.
    let bad = "1.2.156.3005.2.11100000MB00001073001.11440300MB2000100X.202600000001.001.X";
    let line = format!("      example: \"{bad}\"");
    let mut checker = Checker::default();
    for found in examples_on(&line) {
        checker.value("test", "", &found.unwrap());
    }
    assert_eq!(checker.errors.len(), 1, "{:?}", checker.errors);
    assert!(checker.errors[0].contains("should be L"), "{:?}", checker.errors);
    assert_eq!(licence_ids_in(&format!("see `{ROOT}.` and {bad}.")), vec![bad]);
    assert!(examples_on("      example:").iter().all(Result::is_err), "a block example is refused");
    assert!(examples_on("      x-example: 1").is_empty());
}
