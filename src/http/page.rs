//! The verification page a phone camera opens (`GET /v/{ref}`), and a form to paste a payload
//! (`GET /v/`, `POST /v/`). HTML made here: no external assets, no JavaScript, readable on a
//! phone; a strict Content-Security-Policy allows only its one inline style. It never shows a
//! citizen ID number, and the holder's name only masked (张*三).
//!
//! Written by hand: the page is one short template, and a template crate would bring more code
//! than it saves; every value goes through [`escape`].

use std::sync::LazyLock;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Form;
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use serde::Deserialize;

use super::AppState;
use crate::domain::{cst_date, Presented, Status};
use crate::vault::{rfc3339_s, unix_now, VerdictKind};

pub fn routes() -> Vec<(&'static str, &'static str, MethodRouter<AppState>)> {
    vec![("GET", "/v/", get(form)), ("POST", "/v/", post(pasted)), ("GET", "/v/{ref}", get(link))]
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;padding:1rem;max-width:36rem;margin:auto;\
color:#1a1a1a;background:#fafafa}h1{font-size:1.1rem;font-weight:600}.verdict{font-size:2.2rem;font-weight:700;\
padding:1.2rem;border-radius:.6rem;text-align:center;margin:1rem 0;color:#fff}.ok{background:#1b7f3b}\
.bad{background:#b3261e}.warn{background:#a15c00}dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}\
dt{color:#555}dd{margin:0;word-break:break-all}textarea{width:100%;min-height:8rem;font-family:monospace}\
button{font-size:1.1rem;padding:.6rem 1.2rem;margin-top:.6rem}footer{color:#666;font-size:.85rem;margin-top:2rem}";

/// The Content-Security-Policy: nothing but the page's own inline style, forms posting to itself.
static CSP: LazyLock<String> = LazyLock::new(|| {
    let hash = B64.encode(crate::crypto::sha256(STYLE.as_bytes()));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'none'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'"
    )
});

/// HTML-escapes text for element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A natural person's name as the page shows it: the first and last characters, the rest
/// starred (张*三, 李*).
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".into(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

/// A time as the page shows it: China Standard Time (UTC+8), to the second.
fn china_time(t: i64) -> String {
    let cst = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(|d| d.to_offset(cst))
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] (UTC+8)")).ok()
        })
        .unwrap_or_else(|| rfc3339_s(t))
}

/// The big words of a verdict, and its colour class.
fn words(kind: VerdictKind) -> (&'static str, &'static str) {
    match kind {
        VerdictKind::Valid => ("有效 VALID", "ok"),
        VerdictKind::Revoked => ("已吊销 REVOKED", "bad"),
        VerdictKind::Annulled => ("已撤销 ANNULLED", "bad"),
        VerdictKind::Withdrawn => ("已撤回 WITHDRAWN", "bad"),
        VerdictKind::Suspended => ("已暂扣 SUSPENDED", "warn"),
        VerdictKind::Expired => ("已过期 EXPIRED", "bad"),
        VerdictKind::Cancelled => ("已注销 CANCELLED", "bad"),
        VerdictKind::Superseded => ("已换发新版 SUPERSEDED", "warn"),
        VerdictKind::NotYetValid => ("尚未生效 NOT YET VALID", "warn"),
        _ => ("无效 INVALID", "bad"),
    }
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}\
         <footer>电子证照核验 licvault · 本页不显示公民身份号码 · this page never shows an ID number</footer>\
         </body></html>",
        escape(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, k: HeaderName, v: &str| {
        h.insert(k, HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")));
    };
    set(h, header::CONTENT_TYPE, "text/html; charset=utf-8");
    set(h, header::CONTENT_SECURITY_POLICY, &CSP);
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::CACHE_CONTROL, "no-store");
    res
}

/// The verdict block and the licence's public face.
fn verdict_html(kind: VerdictKind, licence: Option<&Presented>, signed_by: Option<&str>, note: &str) -> String {
    let (big, class) = words(kind);
    let mut out =
        format!("<h1>电子证照核验结果</h1><div class=\"verdict {class}\" id=\"verdict\">{}</div>", escape(big));
    if let Some(l) = licence {
        let holder = if l.holder.kind.is_person() { mask_name(&l.holder.name) } else { l.holder.name.clone() };
        let until = l.valid_until.map_or("长期有效".to_string(), |e| cst_date(e - 1).to_string());
        let rows = [
            ("证照名称", l.type_name.clone()),
            ("持证主体", holder),
            ("发证机关", signed_by.unwrap_or(&l.issuer_name).to_string()),
            ("证照编号", l.number.clone()),
            ("有效期", format!("{} 至 {until}", cst_date(l.valid_from))),
        ];
        out.push_str("<dl>");
        for (k, v) in rows {
            out.push_str(&format!("<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v)));
        }
        out.push_str("</dl>");
    }
    out.push_str(&format!("<p>{}</p><p>核验时间 checked at {}</p>", escape(note), escape(&china_time(unix_now()))));
    out
}

/// GET /v/{ref} — the licence a link names, as the vault knows it now.
async fn link(State(s): State<AppState>, Path(reference): Path<String>) -> Response {
    let gone =
        |status, text: &str| page(status, "电子证照核验", &format!("<h1>电子证照核验</h1><p>{}</p>", escape(text)));
    let l = match s.vault.link(&reference) {
        Ok(Some(l)) => l,
        Ok(None) => return gone(StatusCode::NOT_FOUND, "没有这个核验链接。No such verification link."),
        Err(_) => return gone(StatusCode::SERVICE_UNAVAILABLE, "暂时无法核验，请稍后再试。Try again later."),
    };
    if l.withdrawn_at.is_some() {
        let body = verdict_html(
            VerdictKind::Malformed,
            None,
            None,
            "此核验链接已被撤回，请向持证人索取新的二维码。This link was withdrawn; ask the holder for a new code.",
        );
        return page(StatusCode::GONE, "核验链接已撤回", &body);
    }
    let id = match crate::domain::LicenceId::parse(&l.licence) {
        Ok(id) => id,
        Err(_) => return gone(StatusCode::SERVICE_UNAVAILABLE, "暂时无法核验。"),
    };
    match s.vault.licence(&id) {
        Ok((licence, record, _)) => {
            let now = unix_now();
            let status = record.effective(now, licence.valid_from, licence.valid_until);
            let note = match status {
                Status::Valid => "该证照真实有效，状态以本页核验时间为准。",
                _ => "该证照当前不可用于办事。",
            };
            let shown = Presented::of(&licence);
            page(StatusCode::OK, "电子证照核验", &verdict_html(status.into(), Some(&shown), None, note))
        }
        Err(_) => gone(StatusCode::SERVICE_UNAVAILABLE, "暂时无法核验，请稍后再试。Try again later."),
    }
}

const FORM: &str = "<form method=\"post\" action=\"/v/\"><label for=\"payload\">二维码内容（LV2:… 或 LV1:…）\
 Paste the QR payload</label><textarea id=\"payload\" name=\"payload\" required maxlength=\"8000\"></textarea>\
 <button type=\"submit\">核验 Verify</button></form>";

/// GET /v/ — the form.
async fn form() -> Response {
    page(StatusCode::OK, "电子证照核验", &format!("<h1>电子证照核验</h1>{FORM}"))
}

#[derive(Deserialize)]
struct Pasted {
    payload: String,
}

/// POST /v/ — verifies a pasted payload (nothing of it in the URL).
async fn pasted(State(s): State<AppState>, form: Result<Form<Pasted>, FormRejection>) -> Response {
    let Ok(Form(p)) = form else {
        return page(
            StatusCode::BAD_REQUEST,
            "电子证照核验",
            &format!("<h1>电子证照核验</h1><p>请粘贴二维码内容。</p>{FORM}"),
        );
    };
    match s.vault.verify_presented(&p.payload) {
        Ok(mut v) => {
            let note = v.reasons.first().cloned().unwrap_or_default();
            // A compact document names no type: the catalogue does.
            if let Some(l) = v.licence.as_mut().filter(|l| l.type_name.is_empty()).map(std::sync::Arc::make_mut) {
                l.type_name = s
                    .vault
                    .catalogue()
                    .licence_type(l.id.type_code().as_str())
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
            }
            let body = verdict_html(v.kind, v.licence.as_deref(), v.issuer_cert.as_deref(), &note);
            page(StatusCode::OK, "电子证照核验", &format!("{body}{FORM}"))
        }
        Err(_) => page(StatusCode::SERVICE_UNAVAILABLE, "电子证照核验", "<p>暂时无法核验，请稍后再试。</p>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_masking() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("张小三"), "张*三");
        assert_eq!(mask_name("欧阳小明"), "欧**明");
        assert_eq!(mask_name("李"), "*");
        assert!(CSP.contains("style-src 'sha256-") && CSP.contains("default-src 'none'"));
        assert_eq!(china_time(1_700_000_000), "2023-11-15 06:13:20 (UTC+8)");
    }
}
