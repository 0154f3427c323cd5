//! The benchmark's ceiling: the least an axum server can do per request, answering
//! every GET with the same 2 KB JSON body. `ceiling 127.0.0.1:PORT`.

use axum::Router;
use axum::http::header;
use axum::routing::get;

fn body() -> &'static [u8] {
    let mut s = String::from("{\"name\":\"ceiling\",\"padding\":\"");
    while s.len() < 2048 - 2 {
        s.push('x');
    }
    s.push_str("\"}");
    Box::leak(s.into_boxed_str()).as_bytes()
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:4900".into());
    let body = body();
    let app = Router::new().fallback(get(move || async move { ([(header::CONTENT_TYPE, "application/json")], body) }));
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("ceiling listening on http://{addr}");
    axum::serve(listener, app).await.expect("serve");
}
