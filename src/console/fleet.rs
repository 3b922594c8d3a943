//! The console's fleet view: `GET /api/fleets/{id}`, every collection of a fleet with its weeks'
//! statuses, which the page (`assets/fleet.js`) draws as an instance × week matrix, as
//! `fleet show` prints it as text. Reads only.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::Console;
use crate::escape::escape_controls;
use crate::ids::FleetId;
use crate::store::StoreError;

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/api/fleets/{id}", web::get().to(fleet));
}

async fn fleet(console: web::Data<Console>, path: web::Path<String>) -> HttpResponse {
    let not_found = || {
        let what = escape_controls(&path);
        HttpResponse::NotFound().json(json!({ "error": format!("fleet {what} not found") }))
    };
    let Ok(id) = path.parse::<FleetId>() else {
        return not_found();
    };
    let members = match console.store.fleet_members(id).await {
        Ok(members) if members.is_empty() => return not_found(),
        Ok(members) => members,
        Err(error) => return failure(&error),
    };
    let mut collections = Vec::with_capacity(members.len());
    for member in &members {
        let (collection, weeks) = match (
            console.store.collection(member.id).await,
            console.store.weeks_of(member.id).await,
        ) {
            (Ok(Some(collection)), Ok(weeks)) => (collection, weeks),
            (Ok(None), _) => continue,
            (Err(error), _) | (_, Err(error)) => return failure(&error),
        };
        let weeks: Vec<_> = weeks
            .iter()
            .map(|week| json!({"week_start": week.week_start_date, "status": week.status}))
            .collect();
        collections.push(json!({
            "instance_id": escape_controls(&member.instance),
            "id": member.id,
            "status": collection.status,
            "weeks": weeks,
        }));
    }
    HttpResponse::Ok().json(json!({ "fleet_id": id, "collections": collections }))
}

fn failure(error: &StoreError) -> HttpResponse {
    tracing::warn!(%error, "Console: the database did not answer.");
    HttpResponse::ServiceUnavailable().json(json!({ "error": "the database did not answer" }))
}
