//! Finds libav through pkg-config before ffmpeg-sys-next tries, so that a
//! machine without it gets one clear message naming what to install.

const LIBS: [&str; 3] = ["libavformat", "libavcodec", "libavutil"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    for lib in LIBS {
        if let Err(e) = pkg_config::Config::new().cargo_metadata(false).probe(lib) {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            panic!(
                "\n\nlive_upload needs the libav (FFmpeg) development files, and pkg-config could \
                 not find {lib} ({first}).\nOn Debian or Ubuntu, as root:\n  apt-get install -y \
                 pkg-config clang libclang-dev libavformat-dev libavcodec-dev libavutil-dev \
                 libavfilter-dev libavdevice-dev libswscale-dev libswresample-dev\n(or run \
                 scripts/setup.sh)\n\n"
            );
        }
    }
}
