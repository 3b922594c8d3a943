//! A scripted AMC played by a `wiremock::MockServer`: the LwA token endpoint, the reporting API
//! (create, list, get, downloadUrls) and the S3 host of the pre-signed result URLs, all on one
//! loopback server. Stateful `Respond` implementations hold the executions, so polls can answer
//! RUNNING then a terminal status, and a `Script` injects the faults a test needs.
//!
//! wiremock's own request log stays the evidence tests assert on (`FakeAmc::requests`); the
//! state here only decides what to answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use super::script::{CreateFault, Script};
use crate::support::pipeline::INSTANCE_ID;

pub const ACCESS_TOKEN: &str = "Atza|wiremock-access-token";
const LOCAL_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";
const DOWNLOAD_PREFIX: &str = "/s3/results";

pub fn executions_path() -> String {
    format!("/amc/reporting/{INSTANCE_ID}/workflowExecutions")
}

struct Execution {
    id: String,
    week_start: NaiveDate,
    request: Map<String, Value>,
    created_at: chrono::DateTime<Utc>,
    polls: u32,
    url_version: u32,
    hidden_from_lists: u32,
}

#[derive(Default)]
struct State {
    executions: Vec<Execution>,
    creates_per_window: HashMap<NaiveDate, usize>,
}

struct Shared {
    base_url: String,
    script: Script,
    state: Mutex<State>,
}

/// The running fake; dropping it stops the server.
pub struct FakeAmc {
    pub server: MockServer,
    shared: Arc<Shared>,
}

impl FakeAmc {
    pub async fn start(script: Script) -> Self {
        let server = MockServer::start().await;
        let shared = Arc::new(Shared {
            base_url: server.uri(),
            script,
            state: Mutex::new(State::default()),
        });
        let route = |kind| Route {
            shared: shared.clone(),
            kind,
        };
        let executions = executions_path();
        Mock::given(method("POST"))
            .and(path("/auth/o2/token"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600})))
            .mount(&server)
            .await;
        let mounts = [
            ("POST", format!("^{executions}$"), Kind::Create),
            ("GET", format!("^{executions}$"), Kind::List),
            ("GET", format!("^{executions}/[^/]+$"), Kind::Get),
            (
                "GET",
                format!("^{executions}/[^/]+/downloadUrls$"),
                Kind::Urls,
            ),
            ("GET", format!("^{DOWNLOAD_PREFIX}/"), Kind::Download),
        ];
        for (verb, pattern, kind) in mounts {
            Mock::given(method(verb))
                .and(path_regex(pattern))
                .respond_with(route(kind))
                .mount(&server)
                .await;
        }
        Self { server, shared }
    }

    pub fn base_url(&self) -> String {
        self.server.uri()
    }

    pub fn token_url(&self) -> String {
        format!("{}/auth/o2/token", self.server.uri())
    }

    pub fn script(&self) -> &Script {
        &self.shared.script
    }

    /// Every request the server received, in arrival order.
    pub async fn requests(&self) -> Vec<Request> {
        self.server
            .received_requests()
            .await
            .expect("request recording is on")
    }

    /// The create requests whose window starts on `week_start` (answered or not).
    pub async fn creates_for(&self, week_start: NaiveDate) -> Vec<Request> {
        let wanted = format!("{week_start}T00:00:00");
        self.requests()
            .await
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == executions_path())
            .filter(|r| {
                let body: Value = r.body_json().unwrap_or(Value::Null);
                body["timeWindowStart"] == wanted.as_str()
            })
            .collect()
    }

    /// Requests whose path ends with `suffix`.
    pub async fn requests_ending(&self, suffix: &str) -> Vec<Request> {
        let mut found = self.requests().await;
        found.retain(|r| r.url.path().ends_with(suffix));
        found
    }

    /// Requests to the pre-signed result URLs.
    pub async fn downloads(&self) -> Vec<Request> {
        let mut found = self.requests().await;
        found.retain(|r| r.url.path().starts_with(DOWNLOAD_PREFIX));
        found
    }

    /// The `timeWindowTimeZone` an execution was created with.
    pub fn zone_of(&self, amc_id: &str) -> Option<String> {
        let state = self.shared.state.lock().unwrap();
        let execution = state.executions.iter().find(|e| e.id == amc_id)?;
        let zone = execution.request.get("timeWindowTimeZone")?;
        zone.as_str().map(str::to_string)
    }

    /// How many times an execution's status was read (a GET of it, or a status listing that
    /// showed it).
    pub fn looks_at(&self, amc_id: &str) -> u32 {
        let state = self.shared.state.lock().unwrap();
        let execution = state.executions.iter().find(|e| e.id == amc_id);
        execution.map_or(0, |e| e.polls)
    }

    /// How many executions exist on the fake AMC.
    pub fn execution_count(&self) -> usize {
        self.shared.state.lock().unwrap().executions.len()
    }

    /// AMC ids of the executions created for a window, oldest first.
    pub fn amc_ids_for(&self, week_start: NaiveDate) -> Vec<String> {
        let state = self.shared.state.lock().unwrap();
        state
            .executions
            .iter()
            .filter(|e| e.week_start == week_start)
            .map(|e| e.id.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Create,
    List,
    Get,
    Urls,
    Download,
}

struct Route {
    shared: Arc<Shared>,
    kind: Kind,
}

impl Respond for Route {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let shared = &self.shared;
        let mut state = shared.state.lock().unwrap();
        match self.kind {
            Kind::Create => shared.create(&mut state, request),
            Kind::List => shared.list(&mut state, request),
            Kind::Get => shared.get(&mut state, request),
            Kind::Urls => shared.urls(&mut state, request),
            Kind::Download => shared.download(&state, request),
        }
    }
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "code": status, "message": message }))
}

/// The id segment right after `workflowExecutions/`.
fn execution_id_of(request: &Request) -> String {
    let rest = &request.url.path()[executions_path().len() + 1..];
    rest.split('/').next().unwrap_or_default().to_string()
}

impl Shared {
    fn create(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let Ok(Value::Object(body)) = request.body_json::<Value>() else {
            return error(400, "body is not a JSON object");
        };
        let week_start = body
            .get("timeWindowStart")
            .and_then(Value::as_str)
            .and_then(|raw| NaiveDateTime::parse_from_str(raw, LOCAL_FORMAT).ok())
            .map(|start| start.date());
        let Some(week_start) = week_start else {
            return error(400, "timeWindowStart is missing or malformed");
        };
        let seen = state.creates_per_window.entry(week_start).or_default();
        *seen += 1;
        match self.script.create_faults.get(*seen - 1) {
            Some(CreateFault::Throttled) => {
                return error(429, "Too Many Requests").insert_header("Retry-After", "0")
            }
            Some(CreateFault::ServerError) => return error(500, "Internal Server Error"),
            None => {}
        }
        let execution = Execution {
            id: format!("amcexec-{}-{}", week_start, state.executions.len() + 1),
            week_start,
            request: body,
            created_at: Utc::now(),
            polls: 0,
            url_version: 0,
            hidden_from_lists: 0,
        };
        let mut reply = self.describe(&execution, "PENDING", false);
        if self.script.omit_create_id {
            reply.remove("workflowExecutionId");
        }
        state.executions.push(execution);
        ResponseTemplate::new(200).set_body_json(self.wrap(reply))
    }

    fn list(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let include_workflow = request
            .url
            .query_pairs()
            .any(|(k, v)| k == "includeWorkflow" && v == "true");
        // The gateway's status listings ask for a page size (adoption's searches do not): one
        // is a look at each execution it shows, as a GET is, and moves its scripted status on.
        let status_listing = request.url.query_pairs().any(|(k, _)| k == "limit");
        if status_listing && self.script.refuse_status_listings {
            return error(403, "listing is not allowed");
        }
        let mut executions = Vec::new();
        for e in &mut state.executions {
            if e.hidden_from_lists < self.script.list_lag {
                e.hidden_from_lists += 1;
                continue;
            }
            if status_listing {
                e.polls += 1;
            }
            let status = self.status_of(e);
            executions.push(Value::Object(self.describe(e, status, include_workflow)));
        }
        ResponseTemplate::new(200).set_body_json(json!({ "executions": executions }))
    }

    fn get(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let id = execution_id_of(request);
        let Some(execution) = state.executions.iter_mut().find(|e| e.id == id) else {
            return error(404, "execution not found");
        };
        execution.polls += 1;
        let execution = &*execution;
        let reply = self.describe(execution, self.status_of(execution), false);
        ResponseTemplate::new(200).set_body_json(self.wrap(reply))
    }

    fn urls(&self, state: &mut State, request: &Request) -> ResponseTemplate {
        let id = execution_id_of(request);
        let Some(execution) = state.executions.iter_mut().find(|e| e.id == id) else {
            return error(404, "execution not found");
        };
        if self.status_of(execution) != "SUCCEEDED" {
            return error(400, "Execution results are unavailable for download");
        }
        execution.url_version += 1;
        let count = self.script.files_for(execution.week_start).len();
        let urls: Vec<String> = (0..count)
            .map(|index| {
                format!(
                    "{}{DOWNLOAD_PREFIX}/{}/{index}.csv?X-Amz-Signature=v{}",
                    self.base_url, execution.id, execution.url_version
                )
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({ "downloadUrls": urls }))
    }

    fn download(&self, state: &State, request: &Request) -> ResponseTemplate {
        let rest = &request.url.path()[DOWNLOAD_PREFIX.len() + 1..];
        let (id, file) = rest.split_once('/').unwrap_or((rest, ""));
        let index: Option<usize> = file.strip_suffix(".csv").and_then(|i| i.parse().ok());
        let execution = state.executions.iter().find(|e| e.id == id);
        let (Some(execution), Some(index)) = (execution, index) else {
            return ResponseTemplate::new(404).set_body_string("NoSuchKey");
        };
        let signature = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Signature")
            .map(|(_, v)| v.into_owned());
        if self.script.expire_first_urls && signature.as_deref() == Some("v1") {
            return ResponseTemplate::new(403).set_body_raw(
                "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                "application/xml",
            );
        }
        match self.script.files_for(execution.week_start).get(index) {
            Some(bytes) => ResponseTemplate::new(200).set_body_raw(bytes.clone(), "text/csv"),
            None => ResponseTemplate::new(404).set_body_string("NoSuchKey"),
        }
    }

    fn status_of(&self, execution: &Execution) -> &'static str {
        // Not in the API model's list: a status AMC might add without notice.
        const UNKNOWN_STATUS: &str = "QUEUED_FOR_REVIEW";
        if execution.polls <= self.script.running_polls {
            return if execution.polls == 0 {
                "PENDING"
            } else {
                "RUNNING"
            };
        }
        if self
            .script
            .unknown_status_windows
            .contains(&execution.week_start)
        {
            UNKNOWN_STATUS
        } else if self.script.fail_windows.contains_key(&execution.week_start) {
            "FAILED"
        } else {
            "SUCCEEDED"
        }
    }

    /// An execution as AMC reports it: the window in UTC (`Z`) plus the `...Original` echo.
    fn describe(&self, e: &Execution, status: &str, include_workflow: bool) -> Map<String, Value> {
        let text = |key: &str| e.request.get(key).and_then(Value::as_str).unwrap_or("");
        let zone: chrono_tz::Tz = text("timeWindowTimeZone").parse().unwrap_or(chrono_tz::UTC);
        let utc = |raw: &str| {
            NaiveDateTime::parse_from_str(raw, LOCAL_FORMAT)
                .ok()
                .and_then(|local| zone.from_local_datetime(&local).earliest())
                .map(|t| {
                    t.with_timezone(&Utc)
                        .format("%Y-%m-%dT%H:%M:%SZ")
                        .to_string()
                })
        };
        let mut reply = Map::new();
        reply.insert("workflowExecutionId".into(), e.id.clone().into());
        reply.insert("status".into(), status.into());
        if status == "FAILED" {
            let reason = self.script.fail_windows[&e.week_start].clone();
            reply.insert("statusReason".into(), reason.into());
        }
        if status == "SUCCEEDED" {
            // The API models the DOWNLOAD channel; AVAILABLE: the files are published.
            let channel = json!([{"channel": {"type": "DOWNLOAD"}, "status": "AVAILABLE"}]);
            reply.insert("outputChannels".into(), channel);
        }
        reply.insert("createTime".into(), e.created_at.to_rfc3339().into());
        reply.insert("timeWindowType".into(), "EXPLICIT".into());
        reply.insert(
            "timeWindowStart".into(),
            utc(text("timeWindowStart")).into(),
        );
        reply.insert("timeWindowEnd".into(), utc(text("timeWindowEnd")).into());
        reply.insert(
            "timeWindowStartOriginal".into(),
            text("timeWindowStart").into(),
        );
        reply.insert("timeWindowEndOriginal".into(), text("timeWindowEnd").into());
        reply.insert("timeWindowTimeZoneOriginal".into(), zone.name().into());
        if let Some(id) = e.request.get("workflowId") {
            reply.insert("workflowId".into(), id.clone());
        }
        if include_workflow {
            if let Some(workflow) = e.request.get("workflow") {
                reply.insert("workflow".into(), workflow.clone());
            }
        }
        reply
    }

    fn wrap(&self, reply: Map<String, Value>) -> Value {
        if self.script.wrap_replies {
            json!({ "workflowExecution": reply })
        } else {
            Value::Object(reply)
        }
    }
}
