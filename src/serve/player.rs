//! The player page at `/` and where its hls.js comes from.
//!
//! hls.js is never part of this repository: the page loads the copy found at
//! start-up (`--hls-js`, `LIVE_UPLOAD_HLS_JS`, or one of [`default_hls_js`])
//! from `/_player/hls.min.js`, or else a pinned CDN URL.

use std::path::{Path, PathBuf};

/// The hls.js version scripts/setup.sh installs and the CDN fallback names.
pub const HLS_JS_VERSION: &str = "1.7.4";

/// Where the page loads hls.js from when no local copy was found.
pub fn cdn_url() -> String {
    format!("https://cdn.jsdelivr.net/npm/hls.js@{HLS_JS_VERSION}/dist/hls.min.js")
}

/// The path the local copy is served at.
pub const HLS_JS_PATH: &str = "/_player/hls.min.js";

/// Where hls.js is looked for when neither `--hls-js` nor
/// `LIVE_UPLOAD_HLS_JS` names it: the system-wide copy, then the one
/// `scripts/setup.sh` installs with npm under `target/npm` beside the build
/// directory of this binary (`target/release/live_upload`).
pub fn default_hls_js(exe: Option<&Path>) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("/usr/local/share/live_upload/hls.min.js")];
    if let Some(build_dir) = exe.and_then(Path::parent).and_then(Path::parent) {
        out.push(build_dir.join("npm/node_modules/hls.js/dist/hls.min.js"));
    }
    out
}

/// Where the master playlist of a ladder is, given the player's index
/// (`live/index.m3u8`) and the master's name: in the index's folder.
pub fn master_beside(index: &str, master: &str) -> String {
    match index.rsplit_once('/') {
        Some((folder, _)) => format!("{folder}/{master}"),
        None => master.to_string(),
    }
}

/// Where the page asks which playlist to play (see `serve`'s handler).
pub const CHOICE_PATH: &str = "/_player/playlist";

/// The page. `index` is the playlist's path relative to `/`, shown until
/// the server says which playlist to play (a ladder's master when it
/// exists, else the index; see [`CHOICE_PATH`]); `hls_js` the script's URL.
/// A token given to the page as `?token=` is sent on every request the page
/// and hls.js make, as an Authorization header.
pub fn page(index: &str, hls_js: &str) -> String {
    let index_json = js_string(&format!("/{index}"));
    let choice_json = js_string(CHOICE_PATH);
    let script_json = js_string(hls_js);
    let title = html_escape(index);
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>live_upload: {title}</title>
<style>
body {{ margin: 0; background: #111; color: #ddd; font: 14px system-ui, sans-serif; }}
video {{ display: block; width: 100%; max-height: 90vh; background: #000; }}
p {{ margin: 0.5em 1em; }}
</style>
</head>
<body>
<video id="video" controls autoplay muted playsinline></video>
<p id="status">loading {title}</p>
<script>
"use strict";
(function () {{
  var playlist = {index_json};
  var choicePath = {choice_json};
  var hlsScript = {script_json};
  var token = new URLSearchParams(location.search).get("token");
  var video = document.getElementById("video");
  var status = document.getElementById("status");
  // what a test or a curious person can read: every player event, in order
  var events = window.playerEvents = [];
  function note(kind, detail) {{
    events.push({{ kind: kind, detail: detail || "", at: Date.now(), currentTime: video.currentTime }});
    if (kind === "error" || kind === "playing") status.textContent = kind + (detail ? ": " + detail : "");
  }}
  ["playing", "waiting", "stalled", "ended", "error"].forEach(function (kind) {{
    video.addEventListener(kind, function () {{
      note(kind, kind === "error" && video.error ? "media error " + video.error.code : "");
    }});
  }});
  function withToken(url) {{
    return token ? url + (url.indexOf("?") < 0 ? "?" : "&") + "token=" + encodeURIComponent(token) : url;
  }}
  function playNative() {{
    note("native");
    video.src = withToken(playlist);
    video.play().catch(function (e) {{ note("autoplay", String(e)); }});
  }}
  function playHlsJs() {{
    var hls = new Hls({{
      lowLatencyMode: false,
      xhrSetup: function (xhr) {{
        if (token) xhr.setRequestHeader("Authorization", "Bearer " + token);
      }}
    }});
    window.hls = hls;
    var parsed = false;
    hls.on(Hls.Events.ERROR, function (_, data) {{
      if (data.fatal && !parsed && data.type === Hls.ErrorTypes.NETWORK_ERROR) {{
        // the stream has not started yet: try again shortly
        note("waiting-for-stream", data.details);
        status.textContent = "waiting for " + playlist;
        hls.destroy();
        setTimeout(function () {{ choose(playHlsJs); }}, 2000);
        return;
      }}
      // hls.js recovers from non-fatal errors itself; all are recorded
      note(data.fatal ? "error" : "hls-warning", data.type + " " + data.details);
    }});
    hls.on(Hls.Events.MANIFEST_PARSED, function (_, data) {{
      parsed = true;
      note("manifest", data.levels.length + " level(s)");
      video.play().catch(function (e) {{ note("autoplay", String(e)); }});
    }});
    // every switch between renditions, with the height switched to
    hls.on(Hls.Events.LEVEL_SWITCHED, function (_, data) {{
      var level = hls.levels[data.level];
      note("level", data.level + " " + (level ? level.height + "p" : ""));
    }});
    hls.loadSource(playlist);
    hls.attachMedia(video);
  }}
  // asks the server which playlist to play (a ladder's master when there is
  // one); waits for the stream while there is none
  function choose(then) {{
    var headers = token ? {{ Authorization: "Bearer " + token }} : {{}};
    function again(why) {{
      note("waiting-for-stream", why);
      status.textContent = "waiting for " + playlist;
      setTimeout(ask, 2000);
    }}
    function ask() {{
      fetch(choicePath, {{ headers: headers, cache: "no-store" }})
        .then(function (r) {{ return r.json(); }})
        .then(function (c) {{
          if (!c.playlist) return again("no playlist yet");
          playlist = window.playerPlaylist = c.playlist;
          note("playlist", playlist);
          then();
        }})
        .catch(function (e) {{ again(String(e)); }});
    }}
    ask();
  }}
  function start() {{
    if (window.Hls && Hls.isSupported()) choose(playHlsJs);
    else if (video.canPlayType("application/vnd.apple.mpegurl")) choose(playNative);
    else note("error", "this browser plays neither HLS nor Media Source Extensions");
  }}
  var s = document.createElement("script");
  s.src = hlsScript.charAt(0) === "/" ? withToken(hlsScript) : hlsScript;
  s.onload = start;
  s.onerror = function () {{
    if (video.canPlayType("application/vnd.apple.mpegurl")) choose(playNative);
    else note("error", "cannot load hls.js from " + hlsScript);
  }};
  document.head.appendChild(s);
}})();
</script>
</body>
</html>
"##
    )
}

/// A JavaScript string literal that is also safe inside a script element.
pub fn js_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' | '<' | '>' | '&' | '\'' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_its_playlist_and_script_safely() {
        let p = page("live/index.m3u8", HLS_JS_PATH);
        assert!(p.contains(r#"var playlist = "/live/index.m3u8";"#));
        assert!(p.contains(r#"var choicePath = "/_player/playlist";"#));
        assert_eq!(master_beside("ev/index.m3u8", "m.m3u8"), "ev/m.m3u8");
        assert_eq!(master_beside("index.m3u8", "m.m3u8"), "m.m3u8");
        assert!(p.contains(r#"var hlsScript = "/_player/hls.min.js";"#));
        let evil = page("a</script><b>.m3u8", "x\"y");
        assert!(!evil.contains("</script><b>"));
        assert!(evil.contains(r#""x\u0022y""#));
    }

    #[test]
    fn default_locations() {
        let d = default_hls_js(Some(Path::new("/repo/target/release/live_upload")));
        assert_eq!(
            d[1],
            Path::new("/repo/target/npm/node_modules/hls.js/dist/hls.min.js")
        );
        assert!(cdn_url().contains(HLS_JS_VERSION));
    }
}
