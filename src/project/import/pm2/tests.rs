use super::*;
use serde_json::json;
use std::path::PathBuf;

fn cx() -> Context {
    Context { file: "ecosystem.config.js".into(), dir: PathBuf::from("/nonexistent"), base: PathBuf::new(), cpus: 4 }
}

/// The TOML of one app, and the keys reported.
fn one(app: Value) -> (String, Vec<String>) {
    let draft = translate(&json!({ "apps": [app] }), &cx()).unwrap();
    (draft.render(), draft.unsupported.iter().map(|u| u.key.clone()).collect())
}

/// The lines of the rendered job, comments left out.
fn keys(app: Value) -> Vec<String> {
    let (toml, _) = one(app);
    toml.lines()
        .skip_while(|l| !l.starts_with("[jobs."))
        .skip(1)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn script_args_and_interpreter_become_one_argv() {
    let k = keys(json!({"name": "api", "script": "server.js", "args": "--port 3000 --title \"my shop\""}));
    assert_eq!(k[0], r#"cmd = ["node", "server.js", "--port", "3000", "--title", "my shop"]"#);
    let k = keys(json!({"script": "app.py", "interpreter_args": ["-u"], "args": ["a", 1]}));
    assert_eq!(k[0], r#"cmd = ["python3", "-u", "app.py", "a", "1"]"#);
    assert!(k.contains(&r#"env.PYTHONUNBUFFERED = "1""#.to_string()), "{k:?}");
    let k = keys(json!({"script": "npm", "args": "start"}));
    assert_eq!(k[0], r#"cmd = ["npm", "start"]"#);
    let k = keys(json!({"script": "bin/www", "exec_interpreter": "node", "node_args": "--inspect"}));
    assert_eq!(k[0], r#"cmd = ["node", "--inspect", "bin/www"]"#);
    let k = keys(json!({"script": "worker.js", "interpreter": "none"}));
    assert_eq!(k[0], r#"cmd = ["worker.js"]"#);
    let k = keys(json!({"script": "run.sh"}));
    assert_eq!(k[0], r#"cmd = ["bash", "run.sh"]"#);
    let k = keys(json!({"script": "index.ts"}));
    assert_eq!(k[0], r#"cmd = ["bun", "index.ts"]"#);
}

#[test]
fn a_command_line_as_script_runs_through_bash_as_pm2_does() {
    let (toml, reported) = one(json!({"script": "python3 -m http.server 8000", "args": "x"}));
    assert!(toml.contains(r#"cmd = ["bash", "-c", "python3 -m http.server 8000"]"#), "{toml}");
    // PM2 names it after the whole line, which bgrun cannot.
    assert!(toml.contains("[jobs.\"python3-m-http.server-8000\"]"), "{toml}");
    assert_eq!(reported, vec!["args"]);
}

#[test]
fn an_unnamed_app_is_named_after_its_script() {
    let (toml, _) = one(json!({"script": "./src/worker.mjs"}));
    assert!(toml.contains("[jobs.worker]"), "{toml}");
}

#[test]
fn environments_port_and_names() {
    let (toml, _) = one(json!({
        "name": "my api", "script": "s.js", "port": 8080,
        "env": {"NODE_ENV": "development", "N": 3, "ON": true},
        "env_production": {"NODE_ENV": "production"},
        "envStaging": {"X": "1"}
    }));
    assert!(toml.contains("[jobs.my-api]"), "{toml}");
    assert!(toml.contains("# named \"my api\" in the source"), "{toml}");
    for line in ["env.N = \"3\"", "env.ON = \"true\"", "env.PORT = \"8080\"", "env.NODE_ENV = \"development\""] {
        assert!(toml.contains(line), "{line}: {toml}");
    }
    assert!(toml.contains("[jobs.my-api.environments.production]\nNODE_ENV = \"production\"\n"), "{toml}");
}

#[test]
fn instances_become_replicas_and_a_shared_port_an_allocated_one() {
    let (toml, _) = one(json!({"script": "s.js", "instances": "max", "exec_mode": "cluster", "env": {"PORT": 3000}}));
    assert!(toml.contains("replicas = 4"), "{toml}");
    assert!(toml.contains("4 CPUs at import time"), "{toml}");
    assert!(toml.contains("allocate-port = \"PORT\""), "{toml}");
    assert!(toml.contains("cluster mode shared PORT=3000"), "{toml}");
    assert!(!toml.contains("env.PORT"), "{toml}");
    let (toml, _) = one(json!({"script": "s.js", "instances": 2, "exec_mode": "cluster"}));
    assert!(toml.contains("share one listening port"), "{toml}");
    assert!(keys(json!({"script": "s.js", "instances": -1})).contains(&"replicas = 3".to_string()));
    assert!(keys(json!({"script": "s.js", "instances": 0})).contains(&"replicas = 4".to_string()));
    assert!(!keys(json!({"script": "s.js", "instances": 1})).iter().any(|l| l.starts_with("replicas")));
    assert!(keys(json!({"script": "s.js", "instances": "3"})).contains(&"replicas = 3".to_string()));
}

#[test]
fn restart_policy_follows_pm2s_default() {
    let (toml, _) = one(json!({"script": "s.js"}));
    assert!(toml.contains("# PM2 restarts an app after every exit, even a clean one"), "{toml}");
    assert!(toml.contains("restart = \"always\""), "{toml}");
    let k = keys(json!({"script": "s.js", "autorestart": false, "autostart": false}));
    assert!(k.contains(&"restart = \"never\"".to_string()) && k.contains(&"disabled = true".to_string()), "{k:?}");
    let k = keys(json!({
        "script": "s.js", "max_restarts": 5, "min_uptime": 2000, "restart_delay": 500,
        "exp_backoff_restart_delay": 100, "stop_exit_codes": 3, "cron_restart": "0 3 * * *"
    }));
    for line in [
        "max-restarts = 5",
        "min-uptime = \"2s\"",
        "restart-delay = \"500ms\"",
        "backoff = \"100ms\"",
        "stop-exit-codes = [3]",
        "cron = \"0 3 * * *\"",
    ] {
        assert!(k.contains(&line.to_string()), "{line}: {k:?}");
    }
    assert!(keys(json!({"script": "s.js", "min_uptime": "1h"})).contains(&"min-uptime = \"1h\"".to_string()));
    assert!(!keys(json!({"script": "s.js", "cron_restart": 0})).iter().any(|l| l.starts_with("cron")));
}

#[test]
fn memory_limits() {
    let size = |v: Value| {
        keys(json!({"script": "s.js", "max_memory_restart": v})).into_iter().find(|l| l.starts_with("max-rss"))
    };
    assert_eq!(size(json!("300M")).as_deref(), Some("max-rss = \"300MB\""));
    assert_eq!(size(json!("1G")).as_deref(), Some("max-rss = \"1GB\""));
    assert_eq!(size(json!("1.5G")).as_deref(), Some("max-rss = \"1.5GB\""));
    assert_eq!(size(json!(104857600)).as_deref(), Some("max-rss = \"100MB\""));
    assert_eq!(size(json!("512K")).as_deref(), Some("max-rss = \"1MB\""));
    let (toml, _) = one(json!({"script": "s.js", "max_memory_restart": "512K"}));
    assert!(toml.contains("\"512K\" rounded"), "{toml}");
    let (_, reported) = one(json!({"script": "s.js", "max_memory_restart": "lots"}));
    assert_eq!(reported, vec!["max_memory_restart"]);
}

#[test]
fn watching_logs_and_stopping() {
    let k = keys(json!({
        "script": "s.js", "watch": ["src", "./lib/", "*.json"], "ignore_watch": ["node_modules", "logs/", "*.log"],
        "out_file": "out.log", "error_file": "/dev/null", "log": "all.log", "time": true,
        "kill_timeout": 3000, "listen_timeout": 10000, "treekill": false, "namespace": "shop"
    }));
    for line in [
        "watch = [\"src/**\", \"lib/**\", \"*.json\"]",
        "watch-ignore = [\"**/node_modules/**\", \"**/logs/**\", \"*.log\"]",
        "stdout = \"out.log\"",
        "log = \"all.log\"",
        "log-timestamps = true",
        "grace = \"3s\"",
        "ready-timeout = \"10s\"",
        "kill-mode = \"main\"",
        "workspace = \"shop\"",
    ] {
        assert!(k.contains(&line.to_string()), "{line}: {k:?}");
    }
    assert!(!k.iter().any(|l| l.starts_with("stderr")), "{k:?}");
    assert!(keys(json!({"script": "s.js", "watch": true})).contains(&"watch = [\"**\"]".to_string()));
    assert!(!keys(json!({"script": "s.js", "watch": false})).iter().any(|l| l.starts_with("watch")));
}

#[test]
fn what_bgrun_cannot_express_is_reported_and_defaults_are_not() {
    let (_, reported) = one(json!({
        "script": "s.js", "wait_ready": true, "shutdown_with_message": true, "instance_var": "ID",
        "increment_var": "PORT", "pid_file": "a.pid", "vizion": true, "pmx": false, "merge_logs": true,
        "combine_logs": false, "wait_ready_typo": 1, "force": false, "disable_source_map_support": true
    }));
    assert_eq!(
        reported,
        vec![
            "wait_ready_typo",
            "increment_var",
            "instance_var",
            "pid_file",
            "shutdown_with_message",
            "vizion",
            "wait_ready"
        ]
    );
    let draft = translate(&json!({"apps": [{"script": "s.js"}], "deploy": {}, "extra": 1}), &cx()).unwrap();
    let top: Vec<(Option<String>, String)> = draft.unsupported.iter().map(|u| (u.app.clone(), u.key.clone())).collect();
    assert_eq!(top, vec![(None, "deploy".to_string()), (None, "extra".to_string())]);
    assert!(draft.unsupported[0].reason.contains("are not imported"));
}

#[test]
fn the_forms_pm2_accepts() {
    for config in [json!([{"script": "a.js"}]), json!({"apps": {"script": "a.js"}}), json!({"script": "a.js"})] {
        let draft = translate(&config, &cx()).unwrap();
        assert_eq!(draft.jobs.len(), 1, "{config}");
    }
    for bad in [json!("apps"), json!({"apps": []}), json!({"apps": [{"name": "x"}]}), json!({"apps": [3]})] {
        let e = translate(&bad, &cx()).unwrap_err();
        assert_eq!(e.kind, crate::error::ErrorKind::BadInput, "{bad}");
    }
    let e = translate(&json!({"apps": [{"name": "api"}]}), &cx()).unwrap_err();
    assert_eq!(e.message, "ecosystem.config.js: app \"api\" has no script");
}

#[test]
fn paths_are_rewritten_for_another_output_directory() {
    let cx = Context { base: PathBuf::from("deploy"), ..cx() };
    let draft = translate(&json!([{"script": "a.js", "cwd": "../api"}, {"script": "b.js"}]), &cx).unwrap();
    let toml = draft.render();
    assert!(toml.contains("[jobs.a]\ncmd = [\"node\", \"a.js\"]\ncwd = \"api\"\n"), "{toml}");
    assert!(toml.contains("[jobs.b]\ncmd = [\"node\", \"b.js\"]\ncwd = \"deploy\"\n"), "{toml}");
}

#[test]
fn a_script_in_the_apps_directory_runs_from_there() {
    let dir = std::env::temp_dir().join(format!("bgrun-pm2-local-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/serve"), "#!/bin/sh\n").unwrap();
    let cx = Context { dir: dir.clone(), ..cx() };
    let draft = translate(&json!([{"script": "serve", "cwd": "app", "interpreter": "none"}]), &cx).unwrap();
    assert!(draft.render().contains("cmd = [\"./serve\"]"), "{}", draft.render());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn args_split_as_pm2_splits_them() {
    assert_eq!(split_words("a  b"), vec!["a", "b"]);
    assert_eq!(split_words("--name \"my app\" -x 'y z'"), vec!["--name", "my app", "-x", "y z"]);
    assert_eq!(split_words("--opt=\"a b\""), vec!["--opt=a b"]);
    assert!(split_words("   ").is_empty());
}

#[test]
fn the_result_loads() {
    let dir = std::env::temp_dir().join(format!("bgrun-pm2-load-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("api")).unwrap();
    let cx = Context { dir: dir.clone(), ..cx() };
    let draft = translate(
        &json!({"apps": [
            {"name": "api", "script": "server.js", "cwd": "api", "instances": 2, "env": {"PORT": 3000},
             "env_production": {"NODE_ENV": "production"}, "max_memory_restart": "300M", "kill_timeout": 3000,
             "cron_restart": "0 3 * * *", "watch": ["src"], "out_file": "out.log", "time": true},
            {"name": "worker", "script": "worker.py", "autorestart": false, "treekill": false}
        ]}),
        &cx,
    )
    .unwrap();
    let options = crate::project::load::Options { environment: Some("production".into()), ..Default::default() };
    let project = crate::project::load::parse(&dir.join("bgrun.toml"), draft.render(), &options)
        .unwrap_or_else(|p| panic!("{:?}\n{}", p.views(), draft.render()));
    let mut names: Vec<&str> = project.jobs.iter().filter_map(|j| j.name.as_deref()).collect();
    names.sort();
    assert_eq!(names, vec!["api.1", "api.2", "worker"]);
    let api = project.jobs.iter().find(|j| j.name.as_deref() == Some("api.1")).unwrap();
    assert_eq!(api.declared_env.get("NODE_ENV").map(String::as_str), Some("production"));
    assert_eq!(api.max_rss_mb, Some(300));
    std::fs::remove_dir_all(&dir).unwrap();
}
