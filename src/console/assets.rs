//! The console's page and assets, compiled into the binary (no CDN: the page works offline).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// Where the page shell is served.
pub const PAGE: &str = "/";
/// Where the assets are served.
pub const ASSETS: &str = "/console/";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
const NEW_COLLECTION: &str = include_str!("assets/new_collection.js");
const FLEET: &str = include_str!("assets/fleet.js");

/// Only this origin's own script and style; the page is never framed (no clickjacking of the
/// action buttons).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route(PAGE, web::get().to(index))
        .route("/console/app.js", web::get().to(script))
        .route("/console/app.css", web::get().to(style))
        .route("/console/new_collection.js", web::get().to(new_collection))
        .route("/console/fleet.js", web::get().to(fleet));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn new_collection() -> HttpResponse {
    asset("text/javascript; charset=utf-8", NEW_COLLECTION)
}

async fn fleet() -> HttpResponse {
    asset("text/javascript; charset=utf-8", FLEET)
}
