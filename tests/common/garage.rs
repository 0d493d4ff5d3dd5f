//! A Garage S3 server for the tests: started once per test binary by
//! `scripts/garage.sh` on 127.0.0.1, stopped when the test process exits.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub struct Garage {
    pub env: HashMap<String, String>,
}

static GARAGE: OnceLock<Garage> = OnceLock::new();

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared server, started on first use.
pub fn garage() -> &'static Garage {
    GARAGE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("live_upload-garage-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(repo().join("scripts/garage.sh"))
            .arg("start")
            .arg(&dir)
            .env("WATCH_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "scripts/garage.sh start failed (run scripts/setup.sh --test first): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Garage { env }
    })
}

impl Garage {
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} in garage env"))
    }

    pub fn s3_url(&self) -> &str {
        self.var("GARAGE_S3")
    }

    /// The anonymous website endpoint's address (`127.0.0.1:port`).
    pub fn web_addr(&self) -> String {
        self.var("GARAGE_WEB")
            .trim_start_matches("http://")
            .to_string()
    }

    /// A command with the credentials in its environment and nothing else
    /// from the AWS chain that could interfere.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        for var in [
            "AWS_PROFILE",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ENDPOINT_URL",
        ] {
            c.env_remove(var);
        }
        for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
            c.env(var, self.var(var));
        }
        c.env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    /// `ffmpeg -i` on a key through the web endpoint, as a player would
    /// fetch it (plain HTTP, no credentials). Returns (success, stderr).
    pub fn play(&self, key: &str, extra: &[&str]) -> (bool, String) {
        let out = self.player(key, "error", extra).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `ffmpeg` reading `key` through the web endpoint at `loglevel`, its
    /// input options `extra`, decoding to nothing.
    pub fn player(&self, key: &str, loglevel: &str, extra: &[&str]) -> Command {
        let mut c = Command::new("ffmpeg");
        c.args(["-hide_banner", "-v", loglevel, "-headers"])
            .arg(format!(
                "X-Test: 1\r\nHost: {}\r\n",
                self.var("GARAGE_WEB_HOST")
            ))
            .args(extra)
            .arg("-i")
            .arg(format!("{}/{key}", self.var("GARAGE_WEB")))
            .args(["-f", "null", "-"]);
        c
    }

    /// GET through the web endpoint: (status, headers, body).
    pub fn web_get(&self, key: &str) -> (u16, HashMap<String, String>, Vec<u8>) {
        super::http::get(
            &self.web_addr(),
            self.var("GARAGE_WEB_HOST"),
            &format!("/{key}"),
        )
    }

    /// An S3 client for checking what was stored, straight to the server.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        self.s3_client_at(self.s3_url())
    }

    /// An S3 client with this node's credentials for `endpoint` (a proxy
    /// in front of it).
    pub fn s3_client_at(&self, endpoint: &str) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
            None,
            None,
            "test",
        );
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::new()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("garage"))
                .endpoint_url(endpoint)
                .force_path_style(true)
                .credentials_provider(creds)
                .build(),
        )
    }

    /// A run of `garage` against this node.
    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new("garage")
            .arg("-c")
            .arg(Path::new(self.var("GARAGE_CONFIG")))
            .args(args)
            .output()
            .unwrap()
    }
}
