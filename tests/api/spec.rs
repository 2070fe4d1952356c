//! spec/openapi.yaml and the router list the same routes.

use std::collections::BTreeSet;

use crate::common::root;

fn spec_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(root().join("spec/openapi.yaml")).unwrap();
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_paths = line.trim_end() == "paths:";
            path = None;
            continue;
        }
        if !in_paths {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 2 && t.ends_with(':') && t.starts_with('/') {
            let p = t.trim_end_matches(':').to_string();
            // A path written twice is one YAML key given twice: parsers keep one of the two.
            assert!(seen.insert(p.clone()), "{p} is in spec/openapi.yaml twice");
            path = Some(p);
        } else if indent == 4 {
            let m = t.trim_end_matches(':');
            if ["get", "post", "put", "delete", "patch"].contains(&m) {
                out.insert((m.to_uppercase(), path.clone().expect("method under a path")));
            }
        }
    }
    out
}

#[test]
fn router_and_spec_agree() {
    // A wildcard `{*n}` (a tile index spans path segments) is `{n}` in OpenAPI.
    let router: BTreeSet<(String, String)> =
        licvault::http::routes().into_iter().map(|(m, p, _)| (m.to_string(), p.replace("{*", "{"))).collect();
    let spec = spec_routes();
    let only_router: Vec<_> = router.difference(&spec).collect();
    let only_spec: Vec<_> = spec.difference(&router).collect();
    assert!(only_router.is_empty() && only_spec.is_empty(), "router only: {only_router:?}\nspec only: {only_spec:?}");
}
