//! `bgrun schema <command>`: a draft-07 JSON Schema of a command's arguments, built from the same
//! clap definitions the CLI parses, so it cannot drift from them. Keys are the long flag names
//! (positionals by their names); a flag that takes no value is a boolean.

use super::Output;
use crate::error::{Error, Result};
use clap::CommandFactory;
use serde_json::{Map, Value, json};
use std::any::TypeId;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The command: run, kill or tail.
    #[arg(value_parser = ["run", "kill", "tail"])]
    pub command: String,
}

pub fn exec(args: Args, out: &Output) -> Result<i32> {
    let schema = schema_for(&args.command)?;
    if out.json {
        out.json_line(&schema);
    } else {
        out.text(&serde_json::to_string_pretty(&schema).unwrap_or_default());
    }
    Ok(0)
}

pub fn schema_for(command: &str) -> Result<Value> {
    let cli = super::Cli::command();
    let cmd = cli.find_subcommand(command).ok_or_else(|| Error::new(format!("no command {command:?}")))?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version" | "json") || arg.is_hide_set() {
            continue;
        }
        let key = arg.get_long().unwrap_or(id).to_string();
        let mut prop = value_schema(arg);
        let multiple = matches!(arg.get_action(), clap::ArgAction::Append)
            || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
        if multiple {
            prop = json!({ "type": "array", "items": prop });
        }
        let mut prop = prop.as_object().cloned().unwrap_or_default();
        if let Some(help) = arg.get_help() {
            prop.insert("description".into(), Value::String(help.to_string()));
        }
        if let Some(default) = arg.get_default_values().first().and_then(|d| d.to_str()) {
            prop.insert("default".into(), default_value(&prop, default));
        }
        if arg.is_required_set() {
            required.push(Value::String(key.clone()));
        }
        properties.insert(key, Value::Object(prop));
    }
    Ok(json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": format!("bgrun {command}"),
        "description": cmd.get_about().map(|a| a.to_string()).unwrap_or_default(),
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    }))
}

fn value_schema(arg: &clap::Arg) -> Value {
    if matches!(arg.get_action(), clap::ArgAction::SetTrue) {
        return json!({ "type": "boolean" });
    }
    let possible: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
    if !possible.is_empty() {
        return json!({ "type": "string", "enum": possible });
    }
    let t = arg.get_value_parser().type_id();
    let int = |min: i64, max: u64| json!({ "type": "integer", "minimum": min, "maximum": max });
    if t == TypeId::of::<super::run::Cells>() {
        int(1, u16::MAX as u64)
    } else if t == TypeId::of::<super::run::SizeMb>() {
        // As the file takes it too: megabytes, or a size with a unit.
        json!({ "oneOf": [
            { "type": "integer", "minimum": 1 },
            { "type": "string", "pattern": "^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG]([iI]?[bB])?)?\\s*$", "examples": ["512MB", "1GB"] }
        ] })
    } else if t == TypeId::of::<u16>() {
        int(0, u16::MAX as u64)
    } else if t == TypeId::of::<u32>() {
        int(0, u32::MAX as u64)
    } else if t == TypeId::of::<u64>() || t == TypeId::of::<usize>() {
        json!({ "type": "integer", "minimum": 0 })
    } else if t == TypeId::of::<std::time::Duration>() {
        json!({ "type": "string", "pattern": "^\\s*\\d+(\\.\\d+)?\\s*[a-zµ]+(\\s*\\d+(\\.\\d+)?\\s*[a-zµ]+)*\\s*$", "examples": ["500ms", "2s", "5m"] })
    } else {
        json!({ "type": "string" })
    }
}

fn default_value(prop: &Map<String, Value>, text: &str) -> Value {
    match prop.get("type").and_then(Value::as_str) {
        Some("integer") => text.parse::<u64>().map_or(Value::String(text.into()), Value::from),
        Some("boolean") => Value::Bool(text == "true"),
        _ => Value::String(text.into()),
    }
}
