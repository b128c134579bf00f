//! A real browser for tests: Debian's Chromium, headless, driven over WebDriver by
//! `chromedriver` on a free port, with a fresh profile each time. Methods block (the
//! WebDriver client runs on a runtime of its own), screenshots go to
//! `target/browser-screenshots/<test>/`, and `axe()` runs axe-core in the page.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use super::{free_port, repo, wait_for, Proc};

/// How the browser is started.
#[derive(Debug, Clone, Copy)]
pub struct ChromeOpts {
    /// JavaScript on (the default) or off, as some guests run it.
    pub javascript: bool,
    /// A 390×844 phone viewport instead of a desktop window.
    pub mobile: bool,
}

impl Default for ChromeOpts {
    fn default() -> Self {
        Self {
            javascript: true,
            mobile: false,
        }
    }
}

/// A headless Chromium session.
pub struct Chrome {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    shots: PathBuf,
    _profile: tempfile::TempDir,
    _driver: Proc,
}

fn program(name: &str, fallback: &str) -> String {
    ["/usr/bin", "/usr/lib/chromium", "/usr/local/bin"]
        .iter()
        .map(|d| format!("{d}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| fallback.to_string())
}

impl Chrome {
    /// Starts chromedriver and a browser; screenshots go to a folder named after `test`.
    pub fn start(test: &str, opts: ChromeOpts) -> Chrome {
        let port = free_port();
        let driver = Command::new(program("chromedriver", "chromedriver"))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (scripts/setup.sh installs chromium-driver)");
        let driver = Proc(driver);
        wait_for("chromedriver", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if !opts.mobile {
            args.push("--window-size=1280,900".into());
        }
        let mut chrome = json!({
            "binary": program("chromium", "chromium"),
            "args": args,
        });
        if !opts.javascript {
            chrome["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        if opts.mobile {
            chrome["mobileEmulation"] = json!({
                "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
                "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36"
            });
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), chrome);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt
            .block_on(
                // chromedriver listens on loopback: plain HTTP, no TLS stack needed.
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .expect("a Chromium session");
        let shots = repo().join("target/browser-screenshots").join(test);
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).expect("screenshot folder");
        Chrome {
            rt,
            client: Some(client),
            shots,
            _profile: profile,
            _driver: driver,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Opens a URL (waits for the page to load).
    pub fn goto(&self, url: &str) {
        self.rt.block_on(self.c().goto(url)).expect("navigate");
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.rt
            .block_on(self.c().current_url())
            .expect("url")
            .to_string()
    }

    /// The page title.
    pub fn title(&self) -> String {
        self.rt.block_on(self.c().title()).expect("title")
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        wait_for("the page's text", Duration::from_secs(10), || {
            self.rt.block_on(async {
                let body = self.c().find(Locator::Css("body")).await.ok()?;
                // A page being replaced makes its body stale: read the new one.
                body.text().await.ok()
            })
        })
    }

    /// The page source.
    pub fn source(&self) -> String {
        self.rt.block_on(self.c().source()).expect("source")
    }

    /// Types into the field matching `css`.
    pub fn fill(&self, css: &str, value: &str) {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect("field");
            e.clear().await.expect("clear");
            e.send_keys(value).await.expect("type");
        });
    }

    /// Clicks the element matching `css` (waits for any navigation it starts).
    pub fn click(&self, css: &str) {
        self.rt.block_on(async {
            let e = self
                .c()
                .find(Locator::Css(css))
                .await
                .unwrap_or_else(|e| panic!("no element {css}: {e}"));
            e.click().await.expect("click");
        });
    }

    /// Clicks a form's submit button and waits for the page it leads to: a form
    /// submission can return to WebDriver before the navigation starts. The old document
    /// is marked first (when scripts run) so its replacement is told apart even when the
    /// URL stays the same; without scripts, a new URL is the sign.
    pub fn submit(&self, css: &str) {
        let before = self.url();
        let marked = self
            .rt
            .block_on(self.c().execute(
                "document.documentElement.dataset.ggOld = '1'; return true;",
                vec![],
            ))
            .is_ok();
        self.click(css);
        wait_for("the page after the form", Duration::from_secs(10), || {
            let still_old = if marked {
                self.rt
                    .block_on(self.c().execute(
                        "return document.documentElement.dataset.ggOld === '1'",
                        vec![],
                    ))
                    .map_or(true, |v| v == json!(true))
            } else {
                self.url() == before
            };
            let loaded = self
                .rt
                .block_on(self.c().execute("return document.readyState", vec![]))
                .map_or(true, |v| v == json!("complete"));
            (!still_old && loaded).then_some(())
        });
    }

    /// Clicks the link whose text is `text`.
    pub fn click_link(&self, text: &str) {
        self.rt.block_on(async {
            let e = self
                .c()
                .find(Locator::LinkText(text))
                .await
                .unwrap_or_else(|e| panic!("no link {text:?}: {e}"));
            e.click().await.expect("click");
        });
    }

    /// An attribute of the element matching `css`.
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.rt.block_on(async {
            let e = self.c().find(Locator::Css(css)).await.expect("element");
            e.attr(name).await.expect("attribute")
        })
    }

    /// Runs a script in the page and returns its value.
    pub fn js(&self, script: &str) -> Value {
        self.rt
            .block_on(self.c().execute(script, vec![]))
            .expect("script")
    }

    /// Names of the cookies the browser holds for the current page.
    pub fn cookie_names(&self) -> Vec<String> {
        self.rt
            .block_on(self.c().get_all_cookies())
            .expect("cookies")
            .iter()
            .map(|c| c.name().to_string())
            .collect()
    }

    /// Saves a screenshot as `<step>.png` in this test's folder.
    pub fn screenshot(&self, step: &str) {
        let png = self.rt.block_on(self.c().screenshot()).expect("screenshot");
        std::fs::write(self.shots.join(format!("{step}.png")), png).expect("write screenshot");
    }

    /// axe-core's violations on the current page (id, impact, help, targets).
    pub fn axe(&self) -> Vec<Value> {
        self.axe_on("document")
    }

    /// axe-core's violations within one part of the page (`context` is a JS expression:
    /// `document`, or a selector string like `'.guestgate-banner'`).
    pub fn axe_on(&self, context: &str) -> Vec<Value> {
        let path = repo().join("tests/node/node_modules/axe-core/axe.min.js");
        let src = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/setup.sh installs axe-core with npm)",
                path.display()
            )
        });
        self.rt.block_on(async {
            self.c()
                .execute(&format!("{src}\nreturn true;"), vec![])
                .await
                .expect("inject axe-core");
            let found = self
                .c()
                .execute_async(
                    "const done = arguments[arguments.length - 1];\
                     axe.run(CONTEXT).then(r => done(r.violations.map(v => ({\
                       id: v.id, impact: v.impact, help: v.help,\
                       targets: v.nodes.map(n => n.target.join(' '))\
                     }))), e => done([{id: 'axe-error', help: String(e)}]));"
                        .replace("CONTEXT", context)
                        .as_str(),
                    vec![],
                )
                .await
                .expect("run axe-core");
            found.as_array().cloned().unwrap_or_default()
        })
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.close());
        }
    }
}
