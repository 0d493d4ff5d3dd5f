//! Renditions: one input can be published as several (an ABR ladder); every
//! segment and init segment says which one it belongs to.

use std::fmt;

/// A rendition's index in the run's ladder; the input's own stream, the only
/// rendition today, is [`RenditionId::SOURCE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RenditionId(pub u16);

impl RenditionId {
    /// The input's own stream, passed through or repackaged.
    pub const SOURCE: RenditionId = RenditionId(0);
}

impl fmt::Display for RenditionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rendition {}", self.0)
    }
}
