//! Parser directives: `# syntax=`, `# escape=`, `# check=` at the very top.
//!
//! They count only as long as every line so far was a directive: the first line that is
//! anything else (an instruction, another comment, an empty line) ends them, and a line
//! that looks like a directive after that is an ordinary comment. Each may appear once.

/// The directives of a Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` (a frontend image; hako notes it and uses its own frontend).
    pub syntax: Option<String>,
    /// `# escape=` (`\` or `` ` ``).
    pub escape: Option<String>,
    /// `# check=` (build checks configuration; recorded, not enforced).
    pub check: Option<String>,
}

/// Reads directives line by line until the first line that is not one.
#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    done: bool,
    pub(crate) found: Directives,
}

impl DirectiveParser {
    /// Looks at one line (newline and leading blanks already removed). Returns whether
    /// it was a directive; errors on a repeated one or a bad escape token.
    pub(crate) fn line(&mut self, line: &str) -> Result<bool, String> {
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = split_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let slot = match key.as_str() {
            "syntax" => &mut self.found.syntax,
            "escape" => &mut self.found.escape,
            "check" => &mut self.found.check,
            _ => {
                self.done = true;
                return Ok(false);
            }
        };
        if slot.is_some() {
            return Err(format!("only one {key} parser directive can be used"));
        }
        if key == "escape" && value != "\\" && value != "`" {
            return Err(format!(
                "invalid escape token '{value}' does not match ` or \\"
            ));
        }
        *slot = Some(value);
        Ok(true)
    }
}

/// `# key = value` → (lowercase key, value without surrounding blanks).
fn split_directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_alphabetic() || (*i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, after) = rest.split_at(key_len);
    let value = after.trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_lines() {
        assert_eq!(
            split_directive("# escape=`"),
            Some(("escape".into(), "`".into()))
        );
        assert_eq!(
            split_directive("#SYNTAX = docker/dockerfile:1 "),
            Some(("syntax".into(), "docker/dockerfile:1".into()))
        );
        assert_eq!(split_directive("# escape"), None);
        assert_eq!(split_directive("# escape="), None);
        assert_eq!(split_directive("# 1x=y"), None);
        assert_eq!(split_directive("RUN x"), None);
    }

    #[test]
    fn once_each_and_only_at_the_top() {
        let mut p = DirectiveParser::default();
        assert_eq!(p.line("# syntax=a"), Ok(true));
        assert!(
            p.line("# syntax=b")
                .unwrap_err()
                .contains("only one syntax")
        );
        let mut p = DirectiveParser::default();
        assert_eq!(p.line("# check=skip=all"), Ok(true));
        assert_eq!(p.line("# a comment"), Ok(false));
        assert_eq!(p.line("# escape=`"), Ok(false));
        assert_eq!(p.found.escape, None);
        let mut p = DirectiveParser::default();
        assert!(
            p.line("# escape=x")
                .unwrap_err()
                .contains("invalid escape token")
        );
        let mut p = DirectiveParser::default();
        assert_eq!(p.line("# unknown=1"), Ok(false));
        assert_eq!(p.line("# escape=`"), Ok(false));
    }
}
