//! `GET /api/v1/openapi.json`: the API described in OpenAPI 3.1, its schemas generated from the
//! very types the handlers answer with (schemars), so the document cannot drift from the answers.

use super::api::{ErrorBody, Killed, Lines, ListQuery, LogQuery, Removed, RunBody};
use super::projects::{DownView, GraphView, PlanView, ProjectBody, ProjectView};
use crate::protocol::{DaemonInfo, EventView, JobView, StatsView, StatusView, UpView};
use axum::Json;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

type Make = fn(&mut SchemaGenerator) -> Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What an endpoint answers with.
enum Answer {
    Json(u16, Make),
    /// Server-Sent Events, with a description of the events.
    Events(&'static str),
    Text(&'static str),
}

struct Endpoint {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// The query parameters: the properties of this type.
    query: Option<Make>,
    body: Option<Make>,
    answer: Answer,
}

const fn get(path: &'static str, summary: &'static str, answer: Answer) -> Endpoint {
    Endpoint { method: "get", path, summary, query: None, body: None, answer }
}

const fn post(path: &'static str, summary: &'static str, body: Option<Make>, answer: Answer) -> Endpoint {
    Endpoint { method: "post", path, summary, query: None, body, answer }
}

fn endpoints() -> Vec<Endpoint> {
    use Answer::{Events, Json as J};
    vec![
        get("/daemon", "The daemon: version, uptime, jobs, reconcile passes, problems", J(200, schema::<DaemonInfo>)),
        Endpoint {
            query: Some(schema::<ListQuery>),
            ..get("/jobs", "Every job, as `bgrun list`", J(200, schema::<Vec<JobView>>))
        },
        post("/jobs", "Start a job from `bgrun run`'s arguments", Some(schema::<RunBody>), J(201, schema::<JobView>)),
        get("/jobs/{job}", "One job in full, as `bgrun status`", J(200, schema::<StatusView>)),
        Endpoint {
            method: "delete",
            ..get("/jobs/{job}", "Stop and forget a job, its logs too", J(200, schema::<Removed>))
        },
        post("/jobs/{job}/kill", "Stop a job (answered once it has stopped)", None, J(200, schema::<Killed>)),
        post("/jobs/{job}/restart", "Stop a job and start it again", None, J(200, schema::<JobView>)),
        Endpoint {
            query: Some(schema::<LogQuery>),
            ..get("/jobs/{job}/logs", "A job's last lines", J(200, schema::<Lines>))
        },
        Endpoint {
            query: Some(schema::<LogQuery>),
            ..get(
                "/jobs/{job}/logs/follow",
                "A job's last lines, then its new lines as they are written",
                Events("`lines` events (an array of lines each), then `end` ({\"state\"}) when the job is finished"),
            )
        },
        get("/jobs/{job}/events", "A job's recent history", J(200, schema::<Vec<EventView>>)),
        get("/jobs/{job}/stats", "A job's CPU, memory and uptime", J(200, schema::<StatsView>)),
        get(
            "/events",
            "The job list live",
            Events(
                "`jobs` events (the whole list) now and whenever it changes; `stats` events (CPU and memory by job id) every 2 s",
            ),
        ),
        get("/projects", "The projects that have jobs", J(200, schema::<Vec<ProjectView>>)),
        post("/projects/plan", "What `up` would do", Some(schema::<ProjectBody>), J(200, schema::<PlanView>)),
        post(
            "/projects/up",
            "Converge a project to its file (answered once its jobs are ready)",
            Some(schema::<ProjectBody>),
            J(200, schema::<UpView>),
        ),
        post("/projects/down", "Stop a project's jobs", Some(schema::<ProjectBody>), J(200, schema::<DownView>)),
        get("/projects/{project}/graph", "A project's jobs and their `after` edges", J(200, schema::<GraphView>)),
        get("/openapi.json", "This document", Answer::Text("application/json")),
    ]
}

fn new_generator(inline: bool) -> SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.inline_subschemas = inline;
        })
        .for_serialize()
        .into_generator()
}

/// The whole document.
pub fn document() -> Value {
    let mut generator = new_generator(false);
    let mut inline = new_generator(true);
    let error = schema::<ErrorBody>(&mut generator);
    let mut paths = serde_json::Map::new();
    for e in endpoints() {
        let mut op = json!({ "summary": e.summary, "responses": {} });
        let mut parameters: Vec<Value> = path_parameters(e.path);
        if let Some(query) = e.query {
            let schema = query(&mut inline).to_value();
            for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
                parameters.push(json!({ "name": name, "in": "query", "required": false, "schema": property,
                    "description": property.get("description").cloned().unwrap_or(Value::Null) }));
            }
        }
        if !parameters.is_empty() {
            op["parameters"] = Value::Array(parameters);
        }
        if let Some(body) = e.body {
            op["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": body(&mut generator) } } });
        }
        op["responses"] = match e.answer {
            Answer::Json(status, make) => json!({ status.to_string(): {
                "description": "OK", "content": { "application/json": { "schema": make(&mut generator) } } } }),
            Answer::Events(what) => json!({ "200": {
                "description": what, "content": { "text/event-stream": { "schema": { "type": "string" } } } } }),
            Answer::Text(kind) => json!({ "200": { "description": "OK", "content": { kind: { "schema": {} } } } }),
        };
        op["responses"]["default"] =
            json!({ "description": "An error", "content": { "application/json": { "schema": error } } });
        let entry = paths.entry(e.path.to_string()).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bgrun",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "bgrun's HTTP API, served by `bgrun dashboard`. Send `Authorization: Bearer <token>` (the token is in $BGRUN_HOME/dashboard.token)."
        },
        "servers": [{ "url": "/api/v1" }],
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } }
        },
        "security": [{ "token": [] }],
        "paths": paths,
    })
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

pub async fn handle() -> Json<Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_reference_in_the_document_resolves() {
        let doc = super::document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{target}"));
            assert!(schemas.contains_key(name), "{target} is not in the document");
        }
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                assert!(op["responses"]["default"].is_object(), "{method} {path} has no error answer");
            }
        }
    }
}
