//! The spec's four colour classes and when colour is used.

use std::io::IsTerminal;

use owo_colors::{OwoColorize, Style};

use super::ColorMode;

/// The spec's colour classes of console lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 🟢 White on green: activation, subscriptions, successful operations.
    Success,
    /// 🔴 White on red: terminations, errors, unhealthy states.
    Failure,
    /// 🟡 White on amber: broadcasting, forwarding, worker creation, metrics.
    Action,
    /// 🔵 White on cyan: health events and status changes.
    Health,
    /// No colour class.
    Plain,
}

impl Class {
    /// The class named by a log record's `class` field.
    pub fn from_field(name: &str) -> Class {
        match name {
            "success" => Class::Success,
            "failure" => Class::Failure,
            "action" => Class::Action,
            "health" => Class::Health,
            _ => Class::Plain,
        }
    }

    /// The field value naming this class.
    pub const fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::Failure => "failure",
            Class::Action => "action",
            Class::Health => "health",
            Class::Plain => "plain",
        }
    }
}

/// Paints text in a colour class, or leaves it plain when colour is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Painter {
    color: bool,
}

impl Painter {
    /// A painter that colours when `color` is true.
    pub const fn new(color: bool) -> Painter {
        Painter { color }
    }

    /// Whether this painter emits ANSI codes.
    pub const fn is_colored(self) -> bool {
        self.color
    }

    /// Decides colour from the mode, `NO_COLOR` and whether stdout is a terminal.
    pub fn detect(mode: ColorMode) -> Painter {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Painter::new(resolve(mode, no_color, std::io::stdout().is_terminal()))
    }

    /// `text` in `class`'s colours.
    pub fn paint(self, class: Class, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let style = Style::new().white();
        let style = match class {
            Class::Success => style.on_green(),
            Class::Failure => style.on_red(),
            Class::Action => style.on_truecolor(255, 176, 0),
            Class::Health => style.on_cyan(),
            Class::Plain => return text.to_owned(),
        };
        text.style(style).to_string()
    }
}

/// Colour is used when the mode allows it, `NO_COLOR` is unset, and (for
/// `auto`) the output is a terminal.
pub fn resolve(mode: ColorMode, no_color: bool, is_terminal: bool) -> bool {
    !no_color
        && match mode {
            ColorMode::Always => true,
            ColorMode::Never => false,
            ColorMode::Auto => is_terminal,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_and_non_tty_turn_colour_off() {
        assert!(resolve(ColorMode::Auto, false, true));
        assert!(!resolve(ColorMode::Auto, false, false));
        assert!(!resolve(ColorMode::Auto, true, true));
        assert!(!resolve(ColorMode::Always, true, true));
        assert!(resolve(ColorMode::Always, false, false));
        assert!(!resolve(ColorMode::Never, false, true));
    }

    #[test]
    fn classes_use_the_spec_colours() {
        let p = Painter::new(true);
        assert_eq!(p.paint(Class::Success, "ok"), "\u{1b}[37;42mok\u{1b}[0m");
        assert_eq!(p.paint(Class::Failure, "x"), "\u{1b}[37;41mx\u{1b}[0m");
        assert_eq!(
            p.paint(Class::Action, "a"),
            "\u{1b}[37;48;2;255;176;0ma\u{1b}[0m"
        );
        assert_eq!(p.paint(Class::Health, "h"), "\u{1b}[37;46mh\u{1b}[0m");
        assert_eq!(Painter::new(false).paint(Class::Failure, "x"), "x");
        for c in [Class::Success, Class::Failure, Class::Action, Class::Health] {
            assert_eq!(Class::from_field(c.as_str()), c);
        }
    }
}
