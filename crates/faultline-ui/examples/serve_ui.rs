//! Serves only the embedded UI on `127.0.0.1:<port>` (first argument, default 16687).
//!
//! Used by the UI's end-to-end harness when the `faultline` binary does not mount the UI yet:
//! the harness proxies `/api` to the real server and everything else here, so the headers the
//! browser sees (the Content-Security-Policy above all) are the ones this crate sends.

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .map(|p| p.parse().expect("port number"))
        .unwrap_or(16687);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    axum::serve(listener, faultline_ui::router())
        .await
        .expect("serve");
}
