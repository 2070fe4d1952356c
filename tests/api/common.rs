//! Test harness: the real server on port 0 over a temp RocksDB, the development keys, reqwest.

use std::path::PathBuf;
use std::sync::Arc;

use licvault::http::AppState;
use licvault::vault::Vault;
use serde_json::{json, Value};

pub const ISSUER: &str = "dev-token-scjg-issuer-0001";
pub const OTHER_ISSUER: &str = "dev-token-mzj-issuer-0001";
pub const ADMIN: &str = "dev-token-admin-0001";
pub const AUDITOR: &str = "dev-token-auditor-0001";
pub const VERIFIER: &str = "dev-token-zwfw-verifier-0001";
/// The demo holder channel (the government app's backend).
pub const HOLDER_CHANNEL: &str = "dev-token-app-holder-0001";
/// 住房和城乡建设局's counter: a verifier whose scope is 结婚证 and 不动产权证书.
pub const HOUSING_VERIFIER: &str = "dev-token-zjj-verifier-0001";
pub const BUSINESS_LICENCE: &str = "11100000MB00001073001";
pub const MARRIAGE: &str = "11100000MB0000502A001";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of `keys/` with private files at 0600 (git does not keep permission bits).
pub fn keys_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::support_keys::copy_keys(&root().join("keys"), dir.path());
    dir
}

pub struct Server {
    pub base: String,
    pub vault: Arc<Vault>,
    pub http: reqwest::Client,
    _data: tempfile::TempDir,
    pub keys: tempfile::TempDir,
}

impl Server {
    /// Starts the real server (RocksDB in a temp dir, demo clients) on 127.0.0.1:0.
    pub async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        Self::start_on(Arc::new(store), data).await
    }

    /// The real server over any store (a `MemoryStore` for fault injection).
    pub async fn start_on(store: Arc<dyn licvault::store::Store>, data: tempfile::TempDir) -> Self {
        Self::start_with(store, data, keys_copy()).await
    }

    /// The real server on another key directory (another platform's), with the demo clients.
    pub async fn start_with_keys(keys: tempfile::TempDir) -> Self {
        let data = tempfile::tempdir().unwrap();
        let store = licvault::store::RocksStore::open(data.path()).unwrap();
        Self::start_with(Arc::new(store), data, keys).await
    }

    async fn start_with(
        store: Arc<dyn licvault::store::Store>,
        data: tempfile::TempDir,
        keys: tempfile::TempDir,
    ) -> Self {
        let parts = licvault::vault::Parts::load(store, keys.path(), &root().join("fixtures")).unwrap();
        let vault = Vault::start(parts).await.unwrap();
        licvault::cli::seed_demo(&vault, &root().join("fixtures")).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = AppState::new(vault.clone(), licvault::config::Limits::default());
        tokio::spawn(licvault::http::serve(listener, state));
        Self { base, vault, http: reqwest::Client::new(), _data: data, keys }
    }

    /// Makes the server a mirror of its own log, source `a`, and waits until the mirror has
    /// verified a checkpoint; the returned directory holds the mirror's store.
    pub async fn mirror_itself(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), AUDITOR).unwrap();
        let config = serde_json::json!({
            "data": dir.path().join("mirrors"),
            "poll_ms": 50,
            "sources": [{"name": "a", "url": self.base, "log_key": self.vault.log_verifier_key(),
                         "token_file": dir.path().join("token"), "root": self.keys.path().join("root.crt.pem")}]
        });
        std::fs::write(dir.path().join("mirrors.json"), config.to_string()).unwrap();
        let config = licvault::mirror::MirrorConfig::load(&dir.path().join("mirrors.json")).unwrap();
        let mirrors = licvault::mirror::Mirrors::open(&config, |p| {
            let store: Arc<dyn licvault::store::Store> = Arc::new(licvault::store::RocksStore::open(p).unwrap());
            Ok(store)
        })
        .await
        .unwrap();
        let mirrors = Arc::new(mirrors);
        self.vault.set_mirrors(mirrors.clone());
        mirrors.spawn();
        for _ in 0..200 {
            if mirrors.list[0].state().checkpoint.is_some() {
                return dir;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the mirror of the server's own log verified nothing: {:?}", mirrors.list[0].state());
    }

    /// The data directory of the server's store.
    pub fn data_dir(&self) -> &std::path::Path {
        self._data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, token: Option<&str>, path: &str, body: &Value) -> (u16, Value) {
        let mut req = self.http.put(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: Option<&str>, path: &str) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The `LV1:` QR payload of an issued licence, as the API serves it.
    /// GET a QR image with `token` (and the holder channel's `Licvault-Holder`): status, the QR
    /// version header, the body.
    pub async fn qr_image(&self, token: &str, holder: Option<&str>, path: &str) -> (u16, Option<u32>, Vec<u8>) {
        let mut req = self.http.get(self.url(path)).bearer_auth(token);
        if let Some(h) = holder {
            req = req.header("Licvault-Holder", h);
        }
        let res = req.send().await.unwrap();
        let version = res.headers().get("licvault-qr-version").map(|v| v.to_str().unwrap().parse().unwrap());
        (res.status().as_u16(), version, res.bytes().await.unwrap().to_vec())
    }

    pub async fn qr_of(&self, issued: &Value) -> String {
        let id = issued["licence"]["id"].as_str().unwrap();
        let (status, v) = self.get(Some(ADMIN), &format!("/v1/licences/{id}")).await;
        assert_eq!(status, 200, "{v}");
        v["qr_payload"].as_str().unwrap().to_string()
    }

    /// Registers a client through the admin API; returns its token.
    pub async fn new_client(&self, body: Value) -> String {
        let (status, v) = self.post(Some(ADMIN), "/v1/admin/clients", &body).await;
        assert_eq!(status, 201, "{v}");
        v["token"].as_str().unwrap().to_string()
    }

    /// Tries to issue a business licence with `token`; returns the status.
    pub async fn issue_with(&self, token: &str, holder: &str) -> u16 {
        self.post(Some(token), "/v1/licences", &business_licence(holder)).await.0
    }

    /// Issues a business licence to `holder` and returns the 201 body.
    pub async fn issue_company(&self, holder: &str) -> Value {
        let (status, body) = self.post(Some(ISSUER), "/v1/licences", &business_licence(holder)).await;
        assert_eq!(status, 201, "{body}");
        body
    }
}

/// Serves the API of `vault` through the real accept loop with `limits` on a fresh local port
/// until `stop` resolves; returns the address and the task (which ends once drained).
pub async fn serve_api(
    vault: Arc<Vault>,
    limits: licvault::config::Limits,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = AppState::new(vault, limits.clone());
    let task = tokio::spawn(async move {
        licvault::http::serve::serve_with(listener, licvault::http::router(state), &limits, stop).await
    });
    (addr, task)
}

/// A complete 营业执照 issuance body.
pub fn business_licence(holder: &str) -> Value {
    json!({
        "type_code": BUSINESS_LICENCE,
        "holder": {"type": "001", "id": holder, "name": "示例科技有限公司"},
        "fields": {
            "统一社会信用代码": holder,
            "名称": "示例科技有限公司",
            "类型": "有限责任公司",
            "法定代表人": "张三",
            "注册资本": "100万元人民币",
            "成立日期": "2020-05-18",
            "营业期限": "长期",
            "住所": "示例市示例区科技路1号",
            "经营范围": "软件开发；信息技术咨询服务；数据处理和存储支持服务。（依法须经批准的项目，经相关部门批准后方可开展经营活动）",
            "登记机关": "示例市市场监督管理局"
        }
    })
}

pub fn marriage(holder: &str) -> Value {
    json!({
        "type_code": MARRIAGE,
        "holder": {"type": "111", "id": holder, "name": "李四"},
        "fields": {
            "持证人": "李四", "登记日期": "2024-05-20", "结婚证字号": "J440300-2024-000123",
            "男方姓名": "李四", "男方国籍": "中国", "男方出生日期": "1949-12-31", "男方身份证件号": holder,
            "女方姓名": "王五", "女方国籍": "中国", "女方出生日期": "1880-01-01", "女方身份证件号": "440524188001010014"
        }
    })
}

/// Runs the licvault binary with no token in its environment but `token` (a variable and its
/// value): tokens never go on the command line. Whether it succeeded, and what it printed.
pub fn run_licvault(args: &[&str], token: Option<(&str, &str)>) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_licvault"));
    cmd.args(args).env_remove("LICVAULT_ADMIN_TOKEN").env_remove("LICVAULT_AUDITOR_TOKEN");
    if let Some((var, value)) = token {
        cmd.env(var, value);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
