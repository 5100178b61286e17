//! clawsess's slash commands in Claude Code's `commands/` (`clawsess install` writes them;
//! the plugin ships the same files): the templates and how one is made for this binary.

use std::path::Path;

use super::COMMAND_MARKER as MARKER;
use super::settings::PLUGIN_BIN;

/// The slash commands install puts into `commands/`.
pub const COMMANDS: [(&str, &str); 3] = [
    ("attach.md", include_str!("../../commands/attach.md")),
    ("detach.md", include_str!("../../commands/detach.md")),
    ("sessions.md", include_str!("../../commands/sessions.md")),
];

/// `path` quoted for `sh -c`.
pub fn quote(path: &Path) -> String {
    let text = path.to_string_lossy();
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c)) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// A command file for this binary: the plugin's `${CLAUDE_PLUGIN_ROOT}/bin/clawsess` becomes the
/// absolute path.
pub fn render_command(template: &str, exe: &Path) -> String {
    // The plugin's commands name its bin/clawsess by path: Claude Code 2.0.77 does not put a
    // plugin's bin/ on the PATH of a command's `!` line (2.1.100 does), but substitutes
    // ${CLAUDE_PLUGIN_ROOT} there and in allowed-tools, as every later version tried does.
    let body = template.replace(PLUGIN_BIN, &quote(exe));
    // The marker is a YAML comment in the frontmatter (which must stay first in the file):
    // the body is the prompt the model reads when the command runs as a prompt.
    match body.strip_prefix("---\n") {
        Some(rest) => format!("---\n# {MARKER}\n{rest}"),
        None => format!("<!-- {MARKER} -->\n{body}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_spaces_are_quoted_for_the_shell() {
        assert_eq!(quote(Path::new("/usr/bin/clawsess")), "/usr/bin/clawsess");
        assert_eq!(quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }

    #[test]
    fn rendered_commands_name_the_binary_and_keep_frontmatter_first() {
        let text = render_command(COMMANDS[0].1, Path::new("/opt/clawsess"));
        assert!(text.starts_with("---\n"));
        assert!(text.contains("Bash(/opt/clawsess attach"));
        assert!(text.contains("!`/opt/clawsess attach $ARGUMENTS`"));
        // The marker is in the frontmatter: not in the prompt the model reads.
        let (front, body) = text[4..].split_once("\n---\n").unwrap();
        assert!(front.starts_with(&format!("# {MARKER}\n")), "{front}");
        assert!(!body.contains("clawsess uninstall"), "{body}");
    }

    #[test]
    fn a_command_file_an_older_install_wrote_is_ours_too() {
        let old =
            "---\ndescription: x\n---\n<!-- installed by clawsess; `clawsess uninstall` removes it -->\n!`x`";
        assert!(old.contains(MARKER));
    }
}
