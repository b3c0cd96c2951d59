//! Colour on terminals only, and never with NO_COLOR set (https://no-color.org's convention).

use std::io::IsTerminal;

#[derive(Clone, Copy)]
pub struct Colour(bool);

impl Colour {
    /// Colour for standard output.
    pub fn stdout() -> Colour {
        Colour(
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal(),
        )
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }
}
