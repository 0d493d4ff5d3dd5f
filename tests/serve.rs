//! `live_upload serve` as a player and an attacker see it: the real binary on
//! 127.0.0.1, requests written byte for byte on a TCP connection (so paths
//! reach the server exactly as sent, unnormalized), for a local directory
//! and for an S3 prefix read through from Garage.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::garage::garage;
use common::http::{read_message, Message};
use common::server::Server;
use common::BIN;

impl Server {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Message {
        request(&self.addr, "GET", path, headers)
    }
}

/// One request, exactly as given, on a fresh connection.
fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Message {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    read_message(&mut r, method == "HEAD")
        .unwrap()
        .expect("a response")
}

/// A segment's worth of bytes that no other file shares.
fn segment_bytes() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n\
                        #EXT-X-MEDIA-SEQUENCE:1\n#EXTINF:2.000,\nlive-00001.ts\n";
const SECRET: &str = "outside-secret-do-not-serve";

/// What every destination must answer the same way: the objects at
/// `/live/index.m3u8` and `/live/live-00001.ts` hold [`PLAYLIST`] and
/// [`segment_bytes`]; `segment_cache` is the segment's expected Cache-Control.
fn check_objects(s: &Server, segment_cache: &str) {
    let seg = segment_bytes();
    let len = seg.len();

    // types and cache policy
    let p = s.get("/live/index.m3u8", &[]);
    assert_eq!(p.status(), 200);
    assert_eq!(p.body, PLAYLIST.as_bytes());
    assert_eq!(
        p.header("content-type"),
        Some("application/vnd.apple.mpegurl")
    );
    assert_eq!(p.header("cache-control"), Some("no-cache"));
    let g = s.get("/live/live-00001.ts", &[]);
    assert_eq!(g.status(), 200);
    assert_eq!(g.body, seg);
    assert_eq!(g.header("content-type"), Some("video/mp2t"));
    assert_eq!(g.header("cache-control"), Some(segment_cache));
    assert_eq!(g.header("accept-ranges"), Some("bytes"));
    assert_eq!(g.header("access-control-allow-origin"), Some("*"));
    let etag = g.header("etag").expect("an ETag").to_string();
    let modified = g
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();

    // HEAD: the same headers, no body
    let h = request(&s.addr, "HEAD", "/live/live-00001.ts", &[]);
    assert_eq!(h.status(), 200);
    assert!(h.body.is_empty());
    for name in [
        "content-type",
        "content-length",
        "etag",
        "last-modified",
        "cache-control",
    ] {
        assert_eq!(h.header(name), g.header(name), "{name}");
    }
    assert_eq!(h.header("content-length"), Some(len.to_string().as_str()));

    // conditional GET
    let nm = s.get("/live/live-00001.ts", &[("If-None-Match", &etag)]);
    assert_eq!(nm.status(), 304);
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    let other = s.get("/live/live-00001.ts", &[("If-None-Match", "\"other\"")]);
    assert_eq!(other.status(), 200);
    let ims = s.get("/live/live-00001.ts", &[("If-Modified-Since", &modified)]);
    assert_eq!(ims.status(), 304);
    let old = s.get(
        "/live/live-00001.ts",
        &[("If-Modified-Since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    );
    assert_eq!(old.status(), 200);
    assert_eq!(
        s.get("/live/live-00001.ts", &[("If-Match", "\"other\"")])
            .status(),
        412
    );

    // ranges: closed, open, suffix, past the end, and If-Range
    let r = s.get("/live/live-00001.ts", &[("Range", "bytes=0-99")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.body, &seg[..100]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-99/{len}").as_str())
    );
    assert_eq!(r.header("content-length"), Some("100"));
    let open = s.get("/live/live-00001.ts", &[("Range", "bytes=100-")]);
    assert_eq!(open.status(), 206);
    assert_eq!(open.body, &seg[100..]);
    assert_eq!(
        open.header("content-range"),
        Some(format!("bytes 100-{}/{len}", len - 1).as_str())
    );
    let suffix = s.get("/live/live-00001.ts", &[("Range", "bytes=-50")]);
    assert_eq!(suffix.status(), 206);
    assert_eq!(suffix.body, &seg[len - 50..]);
    assert_eq!(
        suffix.header("content-range"),
        Some(format!("bytes {}-{}/{len}", len - 50, len - 1).as_str())
    );
    let beyond = s.get("/live/live-00001.ts", &[("Range", "bytes=5000-")]);
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    let head_range = request(
        &s.addr,
        "HEAD",
        "/live/live-00001.ts",
        &[("Range", "bytes=0-9")],
    );
    assert_eq!(head_range.status(), 206);
    assert_eq!(head_range.header("content-length"), Some("10"));
    let same = s.get(
        "/live/live-00001.ts",
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!(same.status(), 206);
    let stale = s.get(
        "/live/live-00001.ts",
        &[("Range", "bytes=0-9"), ("If-Range", "\"older\"")],
    );
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.body, seg);

    // missing objects, methods
    assert_eq!(s.get("/live/live-99999.ts", &[]).status(), 404);
    assert_eq!(s.get("/live", &[]).status(), 404);
    assert_eq!(
        request(&s.addr, "POST", "/live/index.m3u8", &[]).status(),
        405
    );

    // CORS preflight for a Range request with a token header
    let pre = request(
        &s.addr,
        "OPTIONS",
        "/live/live-00001.ts",
        &[
            ("Origin", "http://player.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization, range"),
        ],
    );
    assert_eq!(pre.status(), 200);
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
    let allowed = pre.header("access-control-allow-headers").unwrap();
    assert!(allowed.contains("authorization") && allowed.contains("range"));
    let exposed = g.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("content-range") && exposed.contains("etag"));
}

/// Paths that try to leave the served directory or prefix. None may return
/// the secret; each must be a 400 or a 404.
const TRAVERSALS: [&str; 14] = [
    "/../outside.txt",
    "/live/../../outside.txt",
    "/%2e%2e/outside.txt",
    "/%2E%2E%2Foutside.txt",
    "/..%2foutside.txt",
    "/live/..%2F..%2Foutside.txt",
    "/.%2e/outside.txt",
    "//etc/passwd",
    "/%2Fetc%2Fpasswd",
    "/live\\..\\..\\outside.txt",
    "/live%5c..%5c..%5coutside.txt",
    "/live/%00",
    "/./live/index.m3u8",
    "/etc/passwd",
];

fn check_traversals(s: &Server) {
    for path in TRAVERSALS {
        let r = s.get(path, &[]);
        assert!(
            r.status() == 400 || r.status() == 404,
            "{path}: {}",
            r.status()
        );
        assert!(
            !String::from_utf8_lossy(&r.raw).contains(SECRET),
            "{path} leaked the outside file"
        );
    }
    // an absolute URI as the request target names the same path
    let abs = s.get(&format!("http://{}/../outside.txt", s.addr), &[]);
    assert!(abs.status() == 400 || abs.status() == 404);
}

/// A served directory `www` beside `outside.txt`, with symlinks from inside
/// to the outside file and to the outside directory.
fn local_tree(tmp: &Path) -> std::path::PathBuf {
    let www = tmp.join("www");
    std::fs::create_dir_all(www.join("live")).unwrap();
    std::fs::write(www.join("live/index.m3u8"), PLAYLIST).unwrap();
    std::fs::write(www.join("live/live-00001.ts"), segment_bytes()).unwrap();
    std::fs::write(www.join("live/.live-00002.ts.1.tmp"), "partial").unwrap();
    std::fs::write(tmp.join("outside.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(tmp.join("outside.txt"), www.join("link.ts")).unwrap();
    std::os::unix::fs::symlink(tmp, www.join("up")).unwrap();
    std::os::unix::fs::symlink("/etc", www.join("etc")).unwrap();
    std::os::unix::fs::symlink("live-00001.ts", www.join("live/inside.ts")).unwrap();
    www
}

#[test]
fn local_directory_types_conditions_and_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let www = local_tree(tmp.path());
    let s = Server::start(&format!("file://{}", www.display()), &[]);
    check_objects(&s, "public, max-age=86400");
    // a new version gets a new ETag
    let before = s.get("/live/index.m3u8", &[]);
    let tag = before.header("etag").unwrap().to_string();
    std::fs::write(www.join("live/index.m3u8"), format!("{PLAYLIST}#\n")).unwrap();
    let after = s.get("/live/index.m3u8", &[("If-None-Match", &tag)]);
    assert_eq!(after.status(), 200);
    assert_ne!(after.header("etag"), Some(tag.as_str()));
    // an empty file
    std::fs::write(www.join("live/empty.ts"), "").unwrap();
    let empty = s.get("/live/empty.ts", &[]);
    assert_eq!((empty.status(), empty.body.len()), (200, 0));
    assert_eq!(s.stop(), Some(0), "SIGTERM exits 0");
}

#[test]
fn local_directory_refuses_traversal_and_outside_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let www = local_tree(tmp.path());
    let s = Server::start(&format!("file://{}", www.display()), &[]);
    check_traversals(&s);
    for path in [
        "/link.ts",
        "/up/outside.txt",
        "/etc/passwd",
        "/etc/hostname",
        "/live/.live-00002.ts.1.tmp",
    ] {
        let r = s.get(path, &[]);
        assert_eq!(r.status(), 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET));
    }
    // a symlink that stays inside is followed
    let inside = s.get("/live/inside.ts", &[]);
    assert_eq!((inside.status(), inside.body), (200, segment_bytes()));
}

#[test]
fn tokens_are_required_and_reveal_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let www = local_tree(tmp.path());
    let s = Server::start(
        &format!("file://{}", www.display()),
        &["--token", "t0k-en_1"],
    );
    let denied: Vec<Message> = [
        "/live/index.m3u8",
        "/live/nothing.ts",
        "/",
        "/../outside.txt",
    ]
    .iter()
    .map(|p| s.get(p, &[]))
    .collect();
    for r in &denied {
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"live_upload\"")
        );
        assert_eq!(r.body, b"token required\n");
        assert_eq!(r.header("etag"), None);
        assert_eq!(r.header("content-length"), Some("15"));
    }
    let wrong = [
        ("Authorization", "Bearer t0k-en_2"),
        ("Authorization", "Bearer t0k-en_1x"),
        ("Authorization", "Basic t0k-en_1"),
    ];
    for h in wrong {
        assert_eq!(s.get("/live/index.m3u8", &[h]).status(), 401, "{h:?}");
    }
    assert_eq!(s.get("/live/index.m3u8?token=t0k-en", &[]).status(), 401);
    let bearer = s.get("/live/index.m3u8", &[("Authorization", "Bearer t0k-en_1")]);
    assert_eq!((bearer.status(), bearer.body), (200, PLAYLIST.into()));
    let query = s.get(
        "/live/live-00001.ts?token=t0k-en_1",
        &[("Range", "bytes=0-9")],
    );
    assert_eq!(query.status(), 206);
    assert_eq!(s.get("/?token=t0k-en_1", &[]).status(), 200);
    // with the token, a missing object is a 404 again
    assert_eq!(s.get("/live/nothing.ts?token=t0k-en_1", &[]).status(), 404);
    // preflights carry no credentials and need none
    let pre = request(
        &s.addr,
        "OPTIONS",
        "/live/index.m3u8",
        &[
            ("Origin", "http://player.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    );
    assert_eq!(pre.status(), 200);
    // a 401 is readable cross-origin, so a player can report it
    assert_eq!(denied[0].header("access-control-allow-origin"), Some("*"));
}

#[test]
fn the_player_page_and_its_script() {
    let tmp = tempfile::tempdir().unwrap();
    let www = local_tree(tmp.path());
    let js = tmp.path().join("hls.min.js");
    std::fs::write(&js, "/* not really hls.js */").unwrap();
    let s = Server::start(
        &format!("file://{}", www.display()),
        &[
            "--index",
            "live/index.m3u8",
            "--hls-js",
            js.to_str().unwrap(),
        ],
    );
    let page = s.get("/", &[]);
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8(page.body).unwrap();
    assert!(html.contains("\"/live/index.m3u8\""), "{html}");
    assert!(html.contains("\"/_player/hls.min.js\""));
    let script = s.get("/_player/hls.min.js", &[]);
    assert_eq!(script.status(), 200);
    assert_eq!(script.body, b"/* not really hls.js */");
    // the page plays the index until a ladder's master appears beside it
    let choice = |s: &Server| {
        let r = s.get("/_player/playlist", &[]);
        assert_eq!(r.status(), 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        String::from_utf8(r.body).unwrap()
    };
    assert_eq!(choice(&s), r#"{"playlist":"/live/index.m3u8"}"#);
    std::fs::write(www.join("live/master.m3u8"), "#EXTM3U\n").unwrap();
    assert_eq!(choice(&s), r#"{"playlist":"/live/master.m3u8"}"#);
    drop(s);
    let s = Server::start(
        &format!("file://{}", www.display()),
        &["--index", "live/index.m3u8", "--no-master"],
    );
    assert_eq!(choice(&s), r#"{"playlist":"/live/index.m3u8"}"#);
    drop(s);
    let s = Server::start(
        &format!("file://{}", www.display()),
        &["--index", "live/none.m3u8", "--master", "live/nothing.m3u8"],
    );
    assert_eq!(choice(&s), r#"{"playlist":null}"#);
    drop(s);

    // without a local copy, the page names the pinned CDN build
    let cdn = Server::start_with(
        {
            let mut c = Command::new(BIN);
            c.env("LIVE_UPLOAD_HLS_JS", "");
            c
        },
        &format!("file://{}", www.display()),
        &[],
    );
    let html = String::from_utf8(cdn.get("/", &[]).body).unwrap();
    if !html.contains("/_player/hls.min.js") {
        assert!(html.contains("https://cdn.jsdelivr.net/npm/hls.js@"));
        assert_eq!(cdn.get("/_player/hls.min.js", &[]).status(), 404);
    }
}

#[test]
fn start_up_failures_have_their_exit_codes() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("serve")
            .args(args)
            .env_remove("LIVE_UPLOAD_TOKEN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        (out.status.code(), err)
    };
    let (code, err) = run(&["file:///nonexistent/dir"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("/nonexistent/dir"), "{err}");
    let (code, err) = run(&["file:///tmp", "--listen", "nowhere"]);
    assert_eq!(code, Some(2), "{err}");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["file:///tmp", "--listen", &addr]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot listen"), "{err}");
    let (code, err) = run(&["file:///tmp", "--hls-js", "/nonexistent/hls.js"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _) = run(&["/tmp"]);
    assert_eq!(code, Some(2));
    // an S3 endpoint that does not answer
    let out = Command::new(BIN)
        .args([
            "serve",
            "s3://live/x",
            "--endpoint-url",
            "http://127.0.0.1:9",
            "--region",
            "garage",
            "--path-style",
        ])
        .env("AWS_ACCESS_KEY_ID", "GKexample")
        .env("AWS_SECRET_ACCESS_KEY", "secretsecretsecret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn s3_prefix_read_through() {
    let g = garage();
    let prefix = format!("serve-{}", std::process::id());
    let client = g.s3_client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let put = |key: String, body: Vec<u8>, ctype: &str, cache: Option<&str>| {
        rt.block_on(
            client
                .put_object()
                .bucket("live")
                .key(key)
                .body(body.into())
                .content_type(ctype)
                .set_cache_control(cache.map(str::to_string))
                .send(),
        )
        .unwrap();
    };
    put(
        format!("{prefix}/live/index.m3u8"),
        PLAYLIST.into(),
        "application/vnd.apple.mpegurl",
        None,
    );
    put(
        format!("{prefix}/live/live-00001.ts"),
        segment_bytes(),
        "video/mp2t",
        Some("public, max-age=600"),
    );
    // beside the prefix: what a traversal would want
    put(
        format!("{prefix}-other/outside.txt"),
        SECRET.into(),
        "text/plain",
        None,
    );
    put("outside.txt".into(), SECRET.into(), "text/plain", None);
    put(
        format!("{prefix}/.hidden"),
        SECRET.into(),
        "text/plain",
        None,
    );

    let s = Server::start_with(
        g.command(BIN),
        &format!("s3://live/{prefix}"),
        &[
            "--endpoint-url",
            g.s3_url(),
            "--path-style",
            "--index",
            "live/index.m3u8",
        ],
    );
    // the object's own Cache-Control is passed through
    check_objects(&s, "public, max-age=600");
    // the page's playlist: the index, as no master exists beside it
    let choice = s.get("/_player/playlist", &[]);
    assert_eq!(choice.body, br#"{"playlist":"/live/index.m3u8"}"#);
    check_traversals(&s);
    for path in [
        "/outside.txt",
        &format!("/../{prefix}-other/outside.txt"),
        &format!("/..%2f{prefix}-other%2foutside.txt"),
        "/.hidden",
    ] {
        let r = s.get(path, &[]);
        assert!(r.status() == 400 || r.status() == 404, "{path}");
        assert!(!String::from_utf8_lossy(&r.raw).contains(SECRET));
    }
    assert_eq!(s.stop(), Some(0));
}
