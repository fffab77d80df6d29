//! A per-example shape and how it prints.

/// A per-example shape (no batch dimension).
pub type Shape = Vec<usize>;

/// Format a shape as `[a, b, c]`.
pub fn fmt_shape(s: &[usize]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}
