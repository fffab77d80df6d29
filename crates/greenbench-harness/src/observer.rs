//! Progress callbacks of the runner and the peak.

/// Progress callbacks (the CLI draws bars from them; tests ignore them).
pub trait Observer {
    /// A measurement of `windows` windows starts; `label` names it.
    fn started(&self, _label: &str, _windows: usize) {}
    /// `done` windows of the current measurement are finished.
    fn window(&self, _done: usize) {}
    /// The current measurement ended (its cell or peak is recorded).
    fn finished(&self, _summary: &str) {}
    /// A one-line note for the user.
    fn note(&self, _msg: &str) {}
}

/// Observes nothing.
pub struct Silent;
impl Observer for Silent {}
