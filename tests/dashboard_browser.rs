//! The dashboard's page in a real headless Chromium, driven through chromedriver (WebDriver) with
//! fantoccini: it signs in with the printed URL, lists a running job, shows a line the job writes
//! without a reload, stops a job, draws a project's graph, and still shows the jobs in a phone's
//! window. `.ci/run` installs Debian's chromium and chromium-driver.

mod common;

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// chromedriver in a process group of its own, with the browsers it starts: all killed (by that
/// group's id) when the test ends, however it ends.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        for program in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
            assert!(
                std::path::Path::new(program).exists(),
                "{program} is missing: `.ci/run` installs it (apt chromium chromium-driver)"
            );
        }
        let port = free_port();
        let child = Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        wait_until("chromedriver to listen", SECS(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        Driver { child, port }
    }

    async fn browser(&self, profile: &std::path::Path) -> Client {
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ];
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "binary": "/usr/bin/chromium", "args": args }));
        // The WebDriver client's TLS links aws-lc and bgrun's links ring: with two providers rustls
        // picks neither by itself.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

const WAIT: Duration = Duration::from_secs(10);

async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
}

/// Clicks what `css` finds. The live job list redraws a row when its job changes, so a button
/// found a moment ago may be gone by the click: it is then found again, until the wait runs out.
async fn click(c: &Client, css: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match find(c, css).await.click().await {
            Ok(()) => return,
            Err(e) if e.is_stale_element_reference() && std::time::Instant::now() < deadline => {}
            Err(e) => panic!("cannot click {css}: {e}"),
        }
    }
}

/// A project of this file in a directory of this name, up and ready.
fn up(b: &Bgrun, name: &str, file: &str) {
    let dir = b.home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("bgrun.toml"), file).unwrap();
    assert_eq!(b.json(&["up", "-f", dir.join("bgrun.toml").to_str().unwrap()])["ok"], true);
}

#[tokio::test(flavor = "current_thread")]
async fn the_page_follows_jobs_and_acts_on_them_in_a_real_browser() {
    let b = Bgrun::new(SECS(180));
    let driver = Driver::start();
    up(
        &b,
        "shop",
        "[project]\nname = \"shop\"\n\n[jobs.db]\ncmd = \"echo db up; exec sleep 600\"\nready-when = \"db up\"\n\n\
         [jobs.web]\ncmd = \"printf '\\\\033[32mweb up\\\\033[0m\\\\n'; exec sleep 600\"\nafter = { db = \"ready\" }\n",
    );
    b.json(&["run", "--name", "talker", "--", "sh", "-c", "echo first; while read line; do echo \"got $line\"; done"]);
    let url = b.json(&["dashboard", "--port", &free_port().to_string()])["url"].as_str().unwrap().to_string();
    let c = driver.browser(&b.home.join("chromium")).await;

    // Signing in: the token URL becomes a cookie and the address bar loses the token.
    c.goto(&url).await.unwrap();
    find(&c, "tr[data-job=\"talker\"]").await;
    assert!(!c.current_url().await.unwrap().as_str().contains("token"));
    find(&c, "section[data-project=\"shop\"] tr[data-job=\"web\"][data-state=\"running\"], section[data-project=\"shop\"] tr[data-job=\"web\"][data-state=\"ready\"]").await;

    // A line the job writes appears in the open viewer, without a reload, within a second.
    click(&c, "tr[data-job=\"talker\"] button[data-action=\"logs\"]").await;
    find(&c, ".log div[data-text=\"first\"]").await;
    b.json(&["send", "talker", "hello", "--enter"]);
    c.wait()
        .at_most(Duration::from_secs(1))
        .for_element(Locator::Css(".log div[data-text=\"got hello\"]"))
        .await
        .expect("the new line within 1 s");

    // ANSI colours are rendered, not printed.
    c.find(Locator::Css("#drawer-close")).await.unwrap().click().await.unwrap();
    click(&c, "tr[data-job=\"web\"] button[data-action=\"logs\"]").await;
    let coloured = find(&c, ".log div[data-text*=\"web up\"] span.fg-32").await;
    assert_eq!(coloured.text().await.unwrap(), "web up");
    c.find(Locator::Css("#drawer-close")).await.unwrap().click().await.unwrap();

    // The project's graph shows its edge, labelled with its condition.
    click(&c, "section[data-project=\"shop\"] button[data-action=\"graph\"]").await;
    let edge = find(&c, "svg.graph g.edge-group[data-from=\"db\"][data-to=\"web\"]").await;
    assert_eq!(edge.attr("data-condition").await.unwrap().as_deref(), Some("ready"));
    c.find(Locator::Css("#drawer-close")).await.unwrap().click().await.unwrap();

    // A project's plan is shown before it is applied; applying it answers in the page.
    find(&c, "section[data-project=\"shop\"] input.file[value$=\"bgrun.toml\"]").await;
    click(&c, "section[data-project=\"shop\"] button[data-action=\"plan\"]").await;
    let planned = find(&c, "section[data-project=\"shop\"] .project-out ul.changes").await;
    assert!(planned.text().await.unwrap().contains("db unchanged"), "{}", planned.text().await.unwrap());
    let apply = c.find(Locator::XPath("//section[@data-project='shop']//button[text()='Apply (up)']")).await.unwrap();
    apply.click().await.unwrap();
    let notice = find(&c, "#notice:not([hidden])").await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::XPath("//*[@id='notice' and contains(., 'shop: up in')]"))
        .await
        .unwrap();
    assert!(!notice.attr("class").await.unwrap().unwrap_or_default().contains("error"));

    // CPU and memory arrive on their own.
    find(&c, "tr[data-job=\"db\"] td[data-cell=\"memory\"]:not(:empty)").await;

    // The screenshot the README shows (kept as a test artifact; BGRUN_UPDATE_SCREENSHOT=1 also
    // writes docs/dashboard.png).
    let png = c.screenshot().await.unwrap();
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"), &png).unwrap();
    if std::env::var_os("BGRUN_UPDATE_SCREENSHOT").is_some() {
        std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/dashboard.png"), &png).unwrap();
    }

    // Stopping a job from the page stops it (as the CLI sees it).
    click(&c, "tr[data-job=\"talker\"] button[data-action=\"stop\"]").await;
    wait_until("talker to be stopped", SECS(10), || (b.state("talker") == "killed").then_some(()));
    find(&c, "tr[data-job=\"talker\"][data-state=\"killed\"]").await;

    // A phone-sized window still shows the jobs.
    c.set_window_size(390, 844).await.unwrap();
    let row = find(&c, "tr[data-job=\"web\"]").await;
    assert!(row.is_displayed().await.unwrap(), "the job is hidden in a phone-sized window");
    let (width, _) = c.get_window_size().await.unwrap();
    assert!(width <= 500, "the window did not shrink");
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone.png"),
        c.screenshot().await.unwrap(),
    )
    .unwrap();

    // Without the cookie, the page is refused.
    c.delete_all_cookies().await.unwrap();
    c.goto(url.split('?').next().unwrap()).await.unwrap();
    let source = c.source().await.unwrap();
    assert!(source.contains("not signed in"), "{source}");

    c.close().await.unwrap();
    b.json(&["dashboard", "stop"]);
}

/// Not a timing: with 500 jobs and one writing 10,000 lines a second, the page lists every job,
/// its viewer keeps a bounded number of lines, and the newest line still arrives.
#[tokio::test(flavor = "current_thread")]
async fn the_page_holds_500_jobs_and_a_flood_of_lines() {
    let b = Bgrun::new(SECS(180));
    let driver = Driver::start();
    up(&b, "many", "[jobs.w]\ncmd = \"exec sleep 600\"\nreplicas = 500\n");
    let flood = "import sys, time\nfor n in range(30000):\n    print('line', n)\n    if n % 100 == 99:\n        \
                 sys.stdout.flush()\n        time.sleep(0.01)\nsys.stdout.flush()\ntime.sleep(600)";
    let url = b.json(&["dashboard", "--port", &free_port().to_string()])["url"].as_str().unwrap().to_string();
    let c = driver.browser(&b.home.join("chromium")).await;
    c.goto(&url).await.unwrap();
    find(&c, "tr[data-job=\"w.500\"]").await;
    assert_eq!(c.find_all(Locator::Css("section[data-project=\"many\"] tr[data-id]")).await.unwrap().len(), 500);
    b.json(&["run", "--name", "flood", "--", "python3", "-c", flood]);
    click(&c, "tr[data-job=\"flood\"] button[data-action=\"logs\"]").await;
    c.wait()
        .at_most(SECS(30))
        .for_element(Locator::Css(".log div[data-text=\"line 29999\"]"))
        .await
        .expect("the last line reaches the viewer");
    let kept = c.find_all(Locator::Css(".log div[data-line]")).await.unwrap().len();
    assert!(kept <= 5000, "the viewer keeps {kept} lines");
    // Still answering: the drawer closes.
    c.find(Locator::Css("#drawer-close")).await.unwrap().click().await.unwrap();
    assert!(!c.find(Locator::Css("#drawer")).await.unwrap().is_displayed().await.unwrap());
    c.close().await.unwrap();
    b.json(&["dashboard", "stop"]);
}
