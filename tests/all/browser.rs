//! A real browser for the dashboard tests: Debian's chromium, headless,
//! driven over WebDriver by chromedriver (both installed by `.ci/run`).

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a page gets to show what a test waits for.
const PATIENCE: Duration = Duration::from_secs(20);

pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: Driver,
}

/// chromedriver in a process group of its own, with the chromium it
/// starts: dropped (a test failed, or ended), the whole group is killed.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = rustix::process::Pid::from_child(&self.0);
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        let _ = self.0.wait();
    }
}

impl Browser {
    /// A fresh headless chromium at 1280×900, or at `width`×`height`.
    pub(crate) async fn start() -> Self {
        Self::start_sized(1280, 900).await
    }

    pub(crate) async fn start_sized(width: u32, height: u32) -> Self {
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        assert!(
            Path::new(&driver_path).exists() && Path::new(&chromium).exists(),
            "the dashboard tests need {driver_path} and {chromium}: \
             apt-get install chromium chromium-driver (as .ci/run does)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Driver(
            Command::new(&driver_path)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("chromedriver starts"),
        );
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-extensions", "--disable-background-networking",
                    "--disable-breakpad", "--disable-crash-reporter",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver at {url} gave no session: {e}"),
            }
        };
        Self {
            client,
            _driver: driver,
        }
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// The text of the first element `css` finds once `done` holds for it.
    pub(crate) async fn text_when(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if done(&text) {
                    return text;
                }
                last = Some(text);
            }
            assert!(
                Instant::now() < deadline,
                "{css} never matched; last text {last:?}; page: {}",
                self.main_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element `css` finds; its text.
    pub(crate) async fn wait_for(&self, css: &str) -> String {
        self.text_when(css, |_| true).await
    }

    /// An attribute of the first element `css` finds once `done` holds.
    pub(crate) async fn attribute_when(
        &self,
        css: &str,
        name: &str,
        done: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = None;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(Some(value)) = element.attr(name).await
            {
                if done(&value) {
                    return value;
                }
                last = Some(value);
            }
            assert!(
                Instant::now() < deadline,
                "{css}[{name}] never matched; last {last:?}; page: {}",
                self.main_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until nothing matches `css`.
    pub(crate) async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(css).await > 0 {
            assert!(
                Instant::now() < deadline,
                "{css} is still there; page: {}",
                self.main_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("find {css}: {e}"))
            .len()
    }

    pub(crate) async fn click(&self, css: &str) {
        self.wait_for(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .expect("element")
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub(crate) async fn fill(&self, css: &str, text: &str) {
        self.wait_for(css).await;
        let field = self.client.find(Locator::Css(css)).await.expect("field");
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// Presses each key in turn, as a keyboard does (`Key` for the
    /// special ones), to whatever has the focus.
    pub(crate) async fn press(&self, keys: &[char]) {
        use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for &key in keys {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client
            .perform_actions(actions)
            .await
            .expect("keys pressed");
    }

    /// The focused element's id and its text (or value, for a field).
    pub(crate) async fn focused(&self) -> (String, String) {
        let found = self
            .eval(
                "const e = document.activeElement;
                 return [e.id || '', ('value' in e && e.tagName !== 'BUTTON') ? e.value : e.textContent.trim()];",
            )
            .await;
        (
            found[0].as_str().unwrap_or_default().to_owned(),
            found[1].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Presses Tab until `done` holds for the focused element (at most 30
    /// times); its id and text.
    pub(crate) async fn tab_to(&self, done: impl Fn(&str, &str) -> bool) -> (String, String) {
        for _ in 0..30 {
            self.press(&[char::from(fantoccini::key::Key::Tab)]).await;
            let (id, text) = self.focused().await;
            if done(&id, &text) {
                return (id, text);
            }
        }
        panic!("Tab never reached it; page: {}", self.main_text().await)
    }

    /// Runs `script` in the page; what it returns.
    pub(crate) async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script {script}: {e}"))
    }

    pub(crate) async fn main_text(&self) -> String {
        match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// With `WARREN_SCREENSHOTS=DIR`, saves the page as `DIR/NAME.png`
    /// (how docs/screenshots are made).
    pub(crate) async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("WARREN_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).expect("save screenshot");
    }

    /// Ends the session (chromedriver closes chromium), then the driver.
    pub(crate) async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}
