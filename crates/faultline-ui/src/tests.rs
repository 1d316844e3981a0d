use super::*;
use axum::http::Request;
use tower::ServiceExt;

async fn get(path: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    router()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body(r: Response) -> Vec<u8> {
    axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec()
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn assert_csp(r: &Response) {
    let csp = header(r, "content-security-policy").expect("CSP on every response");
    assert_eq!(csp, CONTENT_SECURITY_POLICY);
    assert_eq!(header(r, "x-content-type-options"), Some("nosniff"));
}

#[test]
fn csp_forbids_inline_code_and_remote_origins() {
    for directive in CONTENT_SECURITY_POLICY.split(';') {
        let d = directive.trim();
        assert!(!d.contains("unsafe-inline"), "{d}");
        assert!(!d.contains("unsafe-eval"), "{d}");
        assert!(
            !d.contains("http:") && !d.contains("https:") && !d.contains('*'),
            "{d}"
        );
    }
    assert!(CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
    assert!(CONTENT_SECURITY_POLICY.contains("default-src 'none'"));
}

#[test]
fn assets_are_sorted_and_include_index() {
    let paths: Vec<_> = asset_paths().collect();
    assert!(paths.windows(2).all(|w| w[0] < w[1]), "{paths:?}");
    assert!(paths.contains(&"/index.html"));
}

#[tokio::test]
async fn root_serves_index_html_with_csp_and_revalidation() {
    let r = get("/", &[]).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_csp(&r);
    assert_eq!(header(&r, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(header(&r, "cache-control"), Some("no-cache"));
    let html = String::from_utf8(body(r).await).unwrap();
    assert!(html.contains("Faultline"), "{html}");
    // The page never inlines a script (the CSP would block it and the page would be blank).
    for chunk in html.split("<script").skip(1) {
        let tag_end = chunk.find('>').unwrap();
        assert!(chunk[..tag_end].contains("src="), "inline script in {html}");
    }
}

#[tokio::test]
async fn client_routes_fall_back_to_index() {
    let index = body(get("/index.html", &[]).await).await;
    for route in [
        "/search?service=a",
        "/trace/0af7651916cd43dd8448eb211c80319c",
        "/dependencies",
    ] {
        let r = get(route, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{route}");
        assert_csp(&r);
        assert_eq!(body(r).await, index, "{route}");
    }
}

#[tokio::test]
async fn missing_files_and_api_paths_are_404_not_the_page() {
    let r = get("/assets/index-deadbeef.js", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_csp(&r);
    let r = get("/favicon.png", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get("/api/no-such-thing", &[]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    assert_csp(&r);
    let text = String::from_utf8(body(r).await).unwrap();
    assert!(text.contains("\"code\":404"), "{text}");
}

#[tokio::test]
async fn other_methods_are_rejected() {
    let r = router()
        .oneshot(
            Request::builder()
                .method("POST")
                .uri("/")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    assert_csp(&r);
}

#[tokio::test]
async fn hashed_assets_are_immutable_with_right_types() {
    if build_problem().is_some() {
        return; // Only the fallback page is embedded; covered by the other tests.
    }
    let mut saw_js = false;
    for path in asset_paths().filter(|p| p.starts_with("/assets/")) {
        let r = get(path, &[]).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_csp(&r);
        assert_eq!(
            header(&r, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let ct = header(&r, "content-type").unwrap();
        if path.ends_with(".js") {
            saw_js = true;
            assert_eq!(ct, "text/javascript; charset=utf-8");
        }
        if path.ends_with(".css") {
            assert_eq!(ct, "text/css; charset=utf-8");
        }
    }
    assert!(saw_js, "the built UI has a script bundle");
}

#[tokio::test]
async fn gzip_and_etag_revalidation() {
    let plain_body = body(get("/index.html", &[]).await).await;
    let r = get("/index.html", &[("accept-encoding", "br, gzip;q=0.8")]).await;
    let asset = find("/index.html").unwrap();
    if asset.gzip.is_some() {
        assert_eq!(header(&r, "content-encoding"), Some("gzip"));
        assert_eq!(header(&r, "vary"), Some("Accept-Encoding"));
        let gz = body(r).await;
        let mut dec = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut dec).unwrap();
        assert_eq!(dec, plain_body);
    }
    let r = get("/index.html", &[("accept-encoding", "gzip;q=0")]).await;
    assert_eq!(header(&r, "content-encoding"), None);
    let etag = header(&r, "etag").unwrap().to_string();
    let r = get("/index.html", &[("if-none-match", etag.as_str())]).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_csp(&r);
    assert!(body(r).await.is_empty());
    let r = get("/index.html", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// The way the server mounts the UI: API routes first, the UI as the fallback.
#[tokio::test]
async fn mounts_as_the_fallback_of_the_api_router() {
    let app = Router::new()
        .route(
            "/api/services",
            axum::routing::get(|| async { "{\"data\":[]}" }),
        )
        .fallback_service(router());
    let call = |path: &'static str| {
        let app = app.clone();
        async move {
            app.oneshot(Request::builder().uri(path).body(Body::empty()).unwrap())
                .await
                .unwrap()
        }
    };
    let api = call("/api/services").await;
    assert_eq!(body(api).await, b"{\"data\":[]}");
    let page = call("/trace/abc").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_csp(&page);
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    let unknown = call("/api/nope").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
