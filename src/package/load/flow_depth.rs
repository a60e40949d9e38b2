//! How deeply a YAML document nests flow collections (`[…]` and `{…}`), found before it is
//! parsed.
//!
//! libyaml, under `serde_yaml_ng`, looks at one entry per open flow collection for every token
//! it reads, so a document of a few hundred kilobytes nested tens of thousands of levels deep
//! takes a minute to be refused, and one of [`super::MAX_PACKAGE_BYTES`] takes hours.
//! `serde_yaml_ng` refuses anything nested more than 128 levels anyway, so such documents are
//! refused here first, in one pass.
//!
//! The scan follows libyaml's tokenizer wherever it decides what is a flow indicator: quoted and
//! block scalars, plain scalars, comments, anchors, tags and document markers. Where libyaml's
//! choice depends on the indentation of block collections (whether a plain scalar goes on to the
//! next line, where a block scalar ends), the scan follows every possibility at once; the depth
//! it reports is the deepest of them, so it is never less than libyaml's.

/// The deepest flow nesting a YAML document may have, `serde_yaml_ng`'s own limit.
pub const MAX_FLOW_DEPTH: u32 = 128;

/// Where libyaml may be: between tokens, or inside one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between tokens (skipping blanks and line breaks).
    Between,
    /// Inside a plain scalar's run of non-blank characters.
    Plain,
    /// After blanks inside a plain scalar, on the same line.
    PlainBlanks,
    /// After a line break inside a plain scalar.
    PlainBreak,
    Comment,
    Single,
    /// After a `'` inside a single-quoted scalar: its end, or the first half of `''`.
    SingleQuote,
    Double,
    DoubleEscape,
    /// The header and content of a `|` or `>` scalar.
    BlockScalar,
    Anchor,
    Tag,
    /// Inside a `---` or `...` document marker, with two or one characters of it left.
    Marker2,
    Marker1,
}

const MODES: [Mode; 14] = [
    Mode::Between,
    Mode::Plain,
    Mode::PlainBlanks,
    Mode::PlainBreak,
    Mode::Comment,
    Mode::Single,
    Mode::SingleQuote,
    Mode::Double,
    Mode::DoubleEscape,
    Mode::BlockScalar,
    Mode::Anchor,
    Mode::Tag,
    Mode::Marker2,
    Mode::Marker1,
];

/// The flow depths one mode may be at: `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Depths {
    low: u32,
    high: u32,
}

impl Depths {
    fn deeper(self) -> Depths {
        Depths { low: self.low.saturating_add(1), high: self.high.saturating_add(1) }
    }

    fn shallower(self) -> Depths {
        Depths { low: self.low.saturating_sub(1), high: self.high.saturating_sub(1) }
    }
}

/// Every place libyaml may be, with the depths it may be at there.
#[derive(Debug, Clone, Default)]
struct States([Option<Depths>; MODES.len()]);

impl States {
    fn add(&mut self, mode: Mode, depths: Depths) {
        let slot = &mut self.0[mode as usize];
        *slot = Some(match *slot {
            None => depths,
            Some(known) => Depths { low: known.low.min(depths.low), high: known.high.max(depths.high) },
        });
    }

    fn deepest(&self) -> u32 {
        self.0.iter().flatten().map(|depths| depths.high).max().unwrap_or(0)
    }
}

/// The character after the current one, which some of libyaml's decisions look at.
#[derive(Debug, Clone, Copy)]
struct Next(Option<char>);

impl Next {
    /// Blank, a line break or the end of the text (libyaml's `IS_BLANKZ`).
    fn blank_or_end(self) -> bool {
        self.0.is_none_or(|next| is_blank(next) || is_break(next) || next == '\0')
    }

    fn is(self, candidates: &str) -> bool {
        self.0.is_some_and(|next| candidates.contains(next))
    }
}

fn is_blank(character: char) -> bool {
    matches!(character, ' ' | '\t')
}

fn is_break(character: char) -> bool {
    matches!(character, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_flow_indicator(character: char) -> bool {
    matches!(character, ',' | '[' | ']' | '{' | '}')
}

fn is_anchor_character(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '-')
}

/// A character libyaml reads as part of a tag (outside flow collections also `,`, `[` and `]`);
/// `<` and `>` stand for verbatim tags, `!<…>`.
fn is_tag_character(character: char, in_flow: bool) -> bool {
    is_anchor_character(character)
        || ";/?:@&=+$.%!~*'()<>".contains(character)
        || (!in_flow && matches!(character, ',' | '[' | ']'))
}

/// The line and column (both from 1) where the document first nests flow collections deeper than
/// [`MAX_FLOW_DEPTH`], if it does anywhere.
pub fn too_deep(text: &str) -> Option<(usize, usize)> {
    let mut states = States::default();
    states.add(Mode::Between, Depths { low: 0, high: 0 });
    let (mut line, mut column) = (1, 1);
    let mut characters = text.char_indices().peekable();
    while let Some((index, character)) = characters.next() {
        let next = Next(characters.peek().map(|&(_, next)| next));
        let line_start = column == 1;
        let mut following = States::default();
        for mode in MODES {
            let Some(depths) = states.0[mode as usize] else { continue };
            // Block and flow context differ, so a range that spans both is followed as two.
            if depths.low == 0 {
                step(mode, Depths { low: 0, high: 0 }, false, character, next, line_start, &mut following);
            }
            if depths.high > 0 {
                let in_flow = Depths { low: depths.low.max(1), high: depths.high };
                step(mode, in_flow, true, character, next, line_start, &mut following);
            }
        }
        // A document marker at the start of a line ends whatever token libyaml was in, or is an
        // error in it.
        if line_start && is_document_marker(&text[index..]) {
            let depths = states
                .0
                .iter()
                .flatten()
                .copied()
                .reduce(|one, other| Depths { low: one.low.min(other.low), high: one.high.max(other.high) });
            if let Some(depths) = depths {
                following.add(Mode::Marker2, depths);
            }
        }
        states = following;
        if states.deepest() > MAX_FLOW_DEPTH {
            return Some((line, column));
        }
        // `\r\n` is one line break.
        if is_break(character) {
            if !(character == '\n' && text[..index].ends_with('\r')) {
                line += 1;
            }
            column = 1;
        } else if character != '\u{feff}' {
            // libyaml skips a byte order mark at the start of a line, and the text after it
            // still starts the line (a document marker, say), so it takes no column here.
            column += 1;
        }
    }
    None
}

fn is_document_marker(rest: &str) -> bool {
    (rest.starts_with("---") || rest.starts_with("...")) && Next(rest[3..].chars().next()).blank_or_end()
}

/// Where libyaml may go from `mode` on `character`.
fn step(
    mode: Mode,
    depths: Depths,
    in_flow: bool,
    character: char,
    next: Next,
    line_start: bool,
    following: &mut States,
) {
    match mode {
        Mode::Between => between(depths, in_flow, character, next, following),
        Mode::Plain => plain(depths, in_flow, character, next, following),
        Mode::PlainBlanks => plain_blanks(depths, in_flow, character, next, following),
        Mode::PlainBreak => {
            if is_blank(character) || is_break(character) {
                following.add(Mode::PlainBreak, depths);
            } else {
                // Outside flow collections the scalar goes on only if this line is indented
                // deeper than the block collection around it, which the scan does not track.
                if !in_flow {
                    between(depths, in_flow, character, next, following);
                }
                plain_blanks(depths, in_flow, character, next, following);
            }
        }
        Mode::Comment => following.add(if is_break(character) { Mode::Between } else { Mode::Comment }, depths),
        Mode::Single => following.add(if character == '\'' { Mode::SingleQuote } else { Mode::Single }, depths),
        Mode::SingleQuote => {
            if character == '\'' {
                following.add(Mode::Single, depths);
            } else {
                between(depths, in_flow, character, next, following);
            }
        }
        Mode::Double => match character {
            '\\' => following.add(Mode::DoubleEscape, depths),
            '"' => following.add(Mode::Between, depths),
            _ => following.add(Mode::Double, depths),
        },
        Mode::DoubleEscape => following.add(Mode::Double, depths),
        Mode::BlockScalar => {
            // Block scalar content is indented at least one space, so anything else at the start
            // of a line ends it; a line that starts with spaces may or may not.
            if line_start && character != ' ' && !is_break(character) {
                between(depths, in_flow, character, next, following);
            } else {
                following.add(Mode::BlockScalar, depths);
                if line_start && character == ' ' {
                    between(depths, in_flow, character, next, following);
                }
            }
        }
        Mode::Anchor => {
            if is_anchor_character(character) {
                following.add(Mode::Anchor, depths);
            } else {
                between(depths, in_flow, character, next, following);
            }
        }
        Mode::Tag => {
            if is_tag_character(character, in_flow) {
                following.add(Mode::Tag, depths);
            } else {
                between(depths, in_flow, character, next, following);
            }
        }
        Mode::Marker2 => following.add(Mode::Marker1, depths),
        Mode::Marker1 => following.add(Mode::Between, depths),
    }
}

/// A token starts at `character` (libyaml's `yaml_parser_fetch_next_token`).
fn between(depths: Depths, in_flow: bool, character: char, next: Next, following: &mut States) {
    let mode = match character {
        '[' | '{' => {
            following.add(Mode::Between, depths.deeper());
            return;
        }
        ']' | '}' => {
            following.add(Mode::Between, depths.shallower());
            return;
        }
        // libyaml skips a byte order mark only at the start of a line.
        '\u{feff}' => {
            following.add(Mode::Between, depths);
            Mode::Plain
        }
        ' ' | '\t' | ',' => Mode::Between,
        _ if is_break(character) => Mode::Between,
        // `%` starts a directive, which takes its line, or is an error.
        '#' | '%' => Mode::Comment,
        '-' if next.blank_or_end() => Mode::Between,
        '?' | ':' if in_flow || next.blank_or_end() => Mode::Between,
        '*' | '&' => Mode::Anchor,
        '!' => Mode::Tag,
        '|' | '>' if !in_flow => Mode::BlockScalar,
        '\'' => Mode::Single,
        '"' => Mode::Double,
        _ => Mode::Plain,
    };
    following.add(mode, depths);
}

/// `character` inside a plain scalar's run of non-blank characters.
fn plain(depths: Depths, in_flow: bool, character: char, next: Next, following: &mut States) {
    if is_break(character) {
        following.add(Mode::PlainBreak, depths);
    } else if is_blank(character) {
        following.add(Mode::PlainBlanks, depths);
    } else if (character == ':' && (next.blank_or_end() || (in_flow && next.is(",?[]{}"))))
        || (in_flow && is_flow_indicator(character))
    {
        // The scalar ends (or, for `:` before a flow indicator, is an error).
        between(depths, in_flow, character, next, following);
    } else {
        following.add(Mode::Plain, depths);
    }
}

/// `character` after blanks inside a plain scalar: a comment ends it, anything else goes on.
fn plain_blanks(depths: Depths, in_flow: bool, character: char, next: Next, following: &mut States) {
    if character == '#' {
        following.add(Mode::Comment, depths);
    } else {
        plain(depths, in_flow, character, next, following);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    #[test]
    fn counts_flow_collections() {
        assert_eq!(too_deep(&nested(128)), None);
        assert_eq!(too_deep(&nested(129)), Some((1, 129)));
        assert_eq!(too_deep(&("a:\n  b: ".to_owned() + &"{c: ".repeat(129))), Some((2, 6 + 4 * 128)));
        assert_eq!(too_deep(&("a: b\r\n".to_owned() + &nested(129))), Some((2, 129)));
    }

    #[test]
    fn brackets_inside_scalars_and_comments_do_not_count() {
        let many = "[".repeat(200);
        for text in [
            format!("a: '{many}'"),
            format!("a: \"{many}\""),
            format!("a: \"\\\"{many}\""),
            format!("a: 'it''s {many}'"),
            format!("a: b{many}"),
            format!("a: b {many}"),
            format!("a: # {many}"),
            format!("a: |\n  b {many}\n  c {many}\nd: e"),
            format!("- >-\n   b {many}\n- c"),
            format!("a: &anchor b{many}"),
            format!("a: !!str b{many}"),
            format!("%TAG ! tag:{many}\n--- a"),
            format!("a: {{b: '{many}', c: \"{many}\"}}"),
        ] {
            assert_eq!(too_deep(&text), None, "{text}");
            assert!(serde_yaml_ng::from_str::<serde_json::Value>(&text).is_ok(), "{text}");
        }
    }

    #[test]
    fn flow_collections_after_other_tokens_count() {
        let deep = nested(200);
        for text in [
            format!("a: {deep}"),
            format!("- {deep}"),
            format!("? {deep}"),
            format!("a: &anchor {deep}"),
            format!("a: !tag {deep}"),
            format!("a: !<tag:x,y> {deep}"),
            format!("a: 'b' {deep}"),
            format!("a: \"b\"{deep}"),
            format!("a: |\n  b\n{deep}"),
            format!("a: |\n  b\n {deep}"),
            format!("a: b # c\n{deep}"),
            format!("a: b\u{2028}{deep}"),
            format!("--- {deep}"),
            format!("a: b\n--- {deep}"),
            format!("[a b {deep}]"),
            format!("[a:b, c {deep}]"),
            format!("[it's {deep}]"),
            format!("{{\"a\":{deep}}}"),
            format!("[!a,{deep}]"),
            format!("[&a{deep}]"),
            format!("\u{feff}{deep}"),
            format!("\u{feff}--- {deep}"),
        ] {
            assert!(too_deep(&text).is_some(), "{text}");
        }
    }

    #[test]
    fn the_examples_are_not_too_deep() {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
        for file in ["expenses.yaml", "onboarding.yaml", "kitchen/playbooks/pbj-sandwich.yaml"] {
            let text = std::fs::read_to_string(format!("{examples}/{file}")).expect("the example is readable");
            assert_eq!(too_deep(&text), None, "{file}");
        }
    }
}
