//! Per-codec facts read from the bitstream, pure: keyframes of H.264, HEVC
//! and MPEG-2 pictures, ADTS frames of AAC.

pub mod keyframe;
