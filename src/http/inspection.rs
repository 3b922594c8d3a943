//! The inspection routes: `/healthz`, `/readyz`, `/metrics`, `/status`. Transport only: liveness
//! asks the supervisor directly (`observe::is_alive`), everything else asks the `Inspector`,
//! which reads the database on the daemon's runtime; the answers are `observe`'s plain data.

use actix::Addr;
use actix_web::{web, HttpResponse};

use crate::actors::supervisor::Supervisor;
use crate::observe::{
    self, CheckReadiness, GetMetrics, GetTree, Inspector, Readiness, ASK_TIMEOUT, READ_TIMEOUT,
};

/// What the inspection routes ask.
pub struct Inspection {
    pub supervisor: Addr<Supervisor>,
    pub inspector: Addr<Inspector>,
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/status", web::get().to(status));
}

/// Liveness: the process serves and the supervisor's mailbox is being processed.
async fn healthz(state: web::Data<Inspection>) -> HttpResponse {
    match observe::is_alive(&state.supervisor).await {
        Ok(()) => HttpResponse::Ok().body("ok\n"),
        Err(error) => unavailable(format!("supervisor did not answer: {error}")),
    }
}

/// Readiness: the database answers and no shutdown has started.
async fn readyz(state: web::Data<Inspection>) -> HttpResponse {
    let reply = state
        .inspector
        .send(CheckReadiness)
        .timeout(ASK_TIMEOUT * 3)
        .await;
    match reply {
        Ok(Readiness::Ready) => HttpResponse::Ok().body("ready\n"),
        Ok(Readiness::Degraded(detail)) => HttpResponse::Ok().body(format!(
            "ready; {}\n",
            crate::escape::escape_controls(&detail)
        )),
        Ok(Readiness::NotReady(reason)) => unavailable(format!("not ready: {reason}")),
        Err(error) => unavailable(format!("inspector did not answer: {error}")),
    }
}

async fn metrics(state: web::Data<Inspection>) -> HttpResponse {
    let reply = state
        .inspector
        .send(GetMetrics)
        .timeout(READ_TIMEOUT + ASK_TIMEOUT * 3)
        .await;
    match reply {
        Ok(Ok(text)) => HttpResponse::Ok()
            .content_type(observe::PROMETHEUS_TEXT)
            .body(text),
        Ok(Err(error)) => unavailable(error.to_string()),
        Err(error) => unavailable(format!("inspector did not answer: {error}")),
    }
}

async fn status(state: web::Data<Inspection>) -> HttpResponse {
    let reply = state.inspector.send(GetTree).timeout(ASK_TIMEOUT * 4).await;
    match reply {
        Ok(Ok(tree)) => HttpResponse::Ok().json(tree),
        Ok(Err(error)) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({"error": error.to_string()}))
        }
        Err(error) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"error": format!("inspector did not answer: {error}")})),
    }
}

fn unavailable(reason: String) -> HttpResponse {
    HttpResponse::ServiceUnavailable().body(format!("{reason}\n"))
}
