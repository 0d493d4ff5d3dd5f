//! MPEG-TS packaging: the input's own transport stream packets, routed PID
//! by PID into segment files ([`router`]), AAC divided at the cut's time
//! ([`audio_split`]); the [`writer`] owns the files.

pub mod audio_split;
pub mod router;
pub mod writer;
