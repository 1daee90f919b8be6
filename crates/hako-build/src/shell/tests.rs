//! Cases written after BuildKit's `envVarTest`, `wordsTest` and `lex_test.go`: the
//! behaviour users depend on, including the odd corners.

use super::pattern::{reverse_pattern, to_regex};
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn std_env() -> Vec<(String, String)> {
    env(&[
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ])
}

/// `(input, expected)`; `None` means an error.
const WORDS: &[(&str, Option<&str>)] = &[
    ("hello", Some("hello")),
    ("he'll'o", Some("hello")),
    ("he'llo", None),
    ("he\\'llo", Some("he'llo")),
    ("he\\\\'llo", None),
    ("abc\\tdef", Some("abctdef")),
    ("\"abc\\tdef\"", Some("abc\\tdef")),
    ("\"abc\\\\tdef\"", Some("abc\\tdef")),
    ("'abc\\tdef'", Some("abc\\tdef")),
    ("hello\\", Some("hello")),
    ("hello\\\\", Some("hello\\")),
    ("\"hello", None),
    ("\"hello\\\"", None),
    ("\"hel'lo\"", Some("hel'lo")),
    ("'hello", None),
    ("'hello\\'", Some("hello\\")),
    ("'hello\\there'", Some("hello\\there")),
    ("'hello\\\\there'", Some("hello\\\\there")),
    ("\"''\"", Some("''")),
    ("$.", Some("$.")),
    ("he$1x", Some("hex")),
    ("he$.x", Some("he$.x")),
    ("he$pwd.", Some("he.")),
    ("he$PWD", Some("he/home")),
    ("he\\$PWD", Some("he$PWD")),
    ("he\\\\$PWD", Some("he\\/home")),
    ("\"he\\$PWD\"", Some("he$PWD")),
    ("\"he\\\\$PWD\"", Some("he\\/home")),
    ("\\${}", Some("${}")),
    ("\\${}aaa", Some("${}aaa")),
    ("he\\${}xx", Some("he${}xx")),
    ("${}", None),
    ("${}aaa", None),
    ("he${}xx", None),
    ("he${hi}", Some("he")),
    ("he${hi}xx", Some("hexx")),
    ("he${PWD}", Some("he/home")),
    ("he${.}", None),
    ("he${XXX:-000}xx", Some("he000xx")),
    ("he${PWD:-000}xx", Some("he/homexx")),
    ("he${XXX:-$PWD}xx", Some("he/homexx")),
    ("he${XXX:-${PWD:-yyy}}xx", Some("he/homexx")),
    ("he${XXX:-${YYY:-yyy}}xx", Some("heyyyxx")),
    ("he${XXX:YYY}", None),
    ("he${XXX?}", None),
    ("he${XXX:?}", None),
    ("he${PWD?}", Some("he/home")),
    ("he${PWD:?}", Some("he/home")),
    ("he${NULL?}", Some("he")),
    ("he${NULL:?}", None),
    ("he${XXX:+${PWD}}xx", Some("hexx")),
    ("he${PWD:+${XXX}}xx", Some("hexx")),
    ("he${PWD:+${SHELL}}xx", Some("hebashxx")),
    ("he${XXX:+000}xx", Some("hexx")),
    ("he${PWD:+000}xx", Some("he000xx")),
    ("'he${XX}'", Some("he${XX}")),
    ("\"he${PWD}\"", Some("he/home")),
    ("\"he'$PWD'\"", Some("he'/home'")),
    ("\"$PWD\"", Some("/home")),
    ("'$PWD'", Some("$PWD")),
    ("'\\$PWD'", Some("\\$PWD")),
    ("'\"hello\"'", Some("\"hello\"")),
    ("he${PWD", None),
    ("he${PWD:=000}xx", None),
    ("he${PWD:+${PWD}:}xx", Some("he/home:xx")),
    ("he${XXX:-\\$PWD:}xx", Some("he$PWD:xx")),
    ("he${XXX:-\\${PWD}z}xx", Some("he${PWDz}xx")),
    ("안녕하세요", Some("안녕하세요")),
    ("안'녕'하세요", Some("안녕하세요")),
    ("안'녕하세요", None),
    ("안녕\\'하세요", Some("안녕'하세요")),
    ("안녕$KOREAN", Some("안녕한국어")),
    ("\"안녕'$PWD'\"", Some("안녕'/home'")),
    ("${{aaa}", None),
    ("${aaa}}", Some("}")),
    ("${aaa", None),
    ("${{aaa", None),
    ("${aaa}}}", Some("}}")),
    ("${FOO=aaa}", None),
];

#[test]
fn words_like_buildkit_env_var_test() {
    let lex = Lex::default();
    let e = std_env();
    for (input, want) in WORDS {
        let got = lex.word(input, &e);
        match want {
            Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
            None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
        }
    }
}

#[test]
fn splitting_into_words() {
    let lex = Lex::default();
    let mut e = Vec::new();
    let check = |e: &Vec<(String, String)>, input: &str, want: &[&str]| {
        assert_eq!(lex.words(input, e).unwrap(), want, "input {input:?}");
    };
    check(&e, "hello", &["hello"]);
    check(&e, "hello${hi}bye", &["hellobye"]);
    e.push(("hi".into(), "hi".into()));
    check(&e, "hello${hi}bye", &["hellohibye"]);
    e.push(("space".into(), "abc  def".into()));
    check(&e, "hello${space}bye", &["helloabc", "defbye"]);
    check(&e, "hello\"${space}\"bye", &["helloabc  defbye"]);
    check(&e, "hello \"${space}\"bye", &["hello", "abc  defbye"]);
    e.push(("leading".into(), "  ab c".into()));
    check(&e, "hello${leading}def", &["hello", "ab", "cdef"]);
    check(&e, "hello\"${leading}\" def", &["hello  ab c", "def"]);
    check(&e, "hello${leading}", &["hello", "ab", "c"]);
    e.push(("trailing".into(), "ab c   ".into()));
    check(&e, "hello${trailing}", &["helloab", "c"]);
    check(&e, "hello${trailing}d", &["helloab", "c", "d"]);
    check(&e, "hello\"${trailing}\"d", &["helloab c   d"]);
    check(&e, "hello\\\"${hi}\"bye\"x", &["hello\"hibyex"]);
    // Empty quotes make no word, escaped spaces stay inside one.
    check(&e, "a \"\" b", &["a", "b"]);
    check(&e, "a\\ b c", &["a b", "c"]);
    check(&e, "  a\t\tb  ", &["a", "b"]);
}

#[test]
fn modifiers_and_matches() {
    let lex = Lex::default();
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case] = &[
        (
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("xxx  ccc"),
        ),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("xxx bbb ccc"),
        ),
        (
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("aaa bbb "),
        ),
        (
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            &[("FOO", "xxx"), ("BAR", "")],
            Some("aaa  "),
        ),
        ("${FOO?aaa}", &[("FOO", "xxx")], Some("xxx")),
        ("${BAR?bbb}", &[("BAR", "")], Some("")),
        ("${BAZ?ccc}", &[], None),
        ("${BAR:?bbb}", &[("BAR", "")], None),
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &[("FOO", "()[]{}^$.*?|\\x")],
            Some("x"),
        ),
        ("${FOO%%\\**}", &[("FOO", "xx**")], Some("xx")),
        ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y")),
        ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO#$BAR}", &[("FOO", "xxyy"), ("BAR", "x")], Some("xyy")),
        ("${FOO#}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy")),
        ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y")),
        (
            "${ABC:-.}${FOO%x}${ABC:-.}",
            &[("FOO", "xxyy")],
            Some(".xxyy."),
        ),
        ("${FOO%%\\**\\*}", &[("FOO", "a***yy*")], Some("a")),
        ("${FOO%y*}", &[("FOO", "xxyy")], Some("xxy")),
        ("${FOO%%y*}", &[("FOO", "xxyy")], Some("xx")),
        (
            "${FOO/$N/.} - ${FOO//$N/.}",
            &[("FOO", "/foo*/*/*.txt"), ("N", "\\*/")],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$N/} - ${FOO//$N/}",
            &[("FOO", "/tmp/tmp/bar.txt"), ("N", "/tmp")],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$N/$R}",
            &[
                ("FOO", "http://google.de"),
                ("N", "http://"),
                ("R", "https://"),
            ],
            Some("https://google.de"),
        ),
        (
            "${FOO//\\//\\/}",
            &[("FOO", "/tmp/foo.txt")],
            Some("\\/tmp\\/foo.txt"),
        ),
        (
            "${FOO/$BAR/ww}",
            &[("FOO", "xxyy"), ("BAR", "")],
            Some("wwxxyy"),
        ),
        ("${FOO//ww}", &[("FOO", "xxyy")], None),
        ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
        ("${FOO=}", &[], None),
    ];
    for (input, vars, want) in cases {
        let got = lex.word(input, &env(vars));
        match want {
            Some(w) => assert_eq!(got.as_deref(), Ok(*w), "input {input:?}"),
            None => assert!(got.is_err(), "input {input:?} gave {got:?}"),
        }
    }
}

#[test]
fn matched_and_unmatched_names() {
    let lex = Lex::default();
    let r = lex
        .process("${FOO:-a} $BAR ${BAZ+x}", &env(&[("FOO", "1")]))
        .unwrap();
    assert_eq!(r.result, "1  ");
    assert_eq!(r.matched.iter().collect::<Vec<_>>(), ["FOO"]);
    assert_eq!(r.unmatched.iter().collect::<Vec<_>>(), ["BAR", "BAZ"]);
}

#[test]
fn required_variables_carry_the_message() {
    let lex = Lex::default();
    let set = env(&[("VAR", "plain"), ("ARG", "x")]);
    let empty = env(&[("VAR", ""), ("ARG", "x")]);
    let unset = env(&[("ARG", "x")]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(lex.word(no_empty, &set).unwrap(), "plain");
    let e = lex.word(no_empty, &empty).unwrap_err();
    assert!(e.reason.contains("message herex"), "{e}");
    assert!(lex.word(no_empty, &unset).is_err());
    assert_eq!(lex.word(no_unset, &empty).unwrap(), "");
    let e = lex.word(no_unset, &unset).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("failed to process {no_unset:?}: VAR: message herex")
    );
}

#[test]
fn raw_modes_keep_quotes_and_unset_references() {
    let lex = Lex {
        raw_quotes: true,
        skip_unset_env: true,
        ..Lex::default()
    };
    let e = env(&[("A", "1")]);
    assert_eq!(
        lex.word("'x' \"$A\" $B ${C:-d}", &e).unwrap(),
        "'x' \"1\" $B ${C:-d}"
    );
    let raw = Lex {
        raw_escapes: true,
        ..lex
    };
    assert_eq!(raw.word("a\\ b", &e).unwrap(), "a\\ b");
}

#[test]
fn backtick_escape_token() {
    let lex = Lex::new('`');
    let e = env(&[("X", "1")]);
    assert_eq!(lex.word("a`$X b\\c", &e).unwrap(), "a$X b\\c");
    assert_eq!(lex.words("a` b c", &e).unwrap(), ["a b", "c"]);
    assert_eq!(lex.word("\"q`\"$X\"", &e).unwrap(), "q\"1");
}

#[test]
fn skip_process_quotes_treats_quotes_as_text() {
    let lex = Lex {
        skip_process_quotes: true,
        ..Lex::default()
    };
    assert_eq!(lex.word("'a' \"b\"", &NoVars).unwrap(), "'a' \"b\"");
}

#[test]
fn shell_patterns_become_regexes() {
    for (p, want) in [
        ("*", "^.*"),
        ("?", "^."),
        ("\\*", "^\\*"),
        (
            "(()[]{\\}^$.\\*\\?|\\\\",
            "^\\(\\(\\)\\[\\]\\{\\}\\^\\$\\.\\*\\?\\|\\\\",
        ),
    ] {
        assert_eq!(to_regex(p, true, true).unwrap().as_str(), want, "{p}");
    }
    for p in ["\\", "\\x", "\\\\\\"] {
        assert!(to_regex(p, true, true).is_err(), "{p}");
    }
    for (p, want) in [
        ("a\\*c", "c\\*a"),
        ("\\\\\\ab", "b\\a\\\\"),
        ("ab\\", "\\ba"),
        ("👽\\🚀🖖", "🖖\\🚀👽"),
        ("\\\\b", "b\\\\"),
    ] {
        assert_eq!(reverse_pattern(p), want, "{p}");
    }
}

#[test]
fn platform_style_names() {
    let lex = Lex::default();
    let e = env(&[
        ("VERSION", "v1.2.3"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "arm"),
        ("TARGETVARIANT", "v7"),
    ]);
    let w =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    assert_eq!(
        lex.word(w, &e).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
}

/// An empty pattern matches between every two characters (as Go's regexp, so BuildKit),
/// so `${B///$B}` squares B's length and nesting it grows exponentially: the expansion
/// stops at 1 MiB with an error instead of taking seconds and then all memory (a
/// dockerfile fuzzer find: a 1 KB file made a 13 MB pattern).
#[test]
fn expansions_stop_at_a_mebibyte() {
    let lex = Lex::default();
    let small = env(&[("B", "ab")]);
    assert_eq!(lex.word("${B//${NONE}/-}", &small).unwrap(), "-a-b-");
    assert_eq!(lex.word("${B/${NONE}/-}", &small).unwrap(), "-ab");
    let big = env(&[("B", &"x".repeat(2000))]);
    for word in [
        "${B///$B}",
        "${B///${B///$B}}",
        "${B%%${B///$B}}",
        "$B$B${B///$B}",
    ] {
        let e = lex.word(word, &big).unwrap_err();
        assert!(
            e.reason.contains("longer than 1048576 bytes"),
            "{word}: {e}"
        );
    }
    // Just under the limit is fine: 500 × 501 + 500 bytes.
    let ok = env(&[("B", &"y".repeat(500))]);
    assert_eq!(lex.word("${B///$B}", &ok).unwrap().len(), 500 * 501 + 500);
    // A pattern that needs more characters than the value has is not compiled (a grown
    // one takes a second), and the answer is the same: no match. A bad one still fails.
    let short = env(&[("S", "ab*"), ("P", &"y*".repeat(300_000))]);
    assert_eq!(lex.word("${S%%$P}", &short).unwrap(), "ab*");
    assert_eq!(lex.word("${S//$P/z}", &short).unwrap(), "ab*");
    assert_eq!(lex.word("${S#a*}", &short).unwrap(), "b*");
    assert_eq!(lex.word("${S%\\*}", &short).unwrap(), "ab");
    assert!(lex.word("${S%%${P}\\q}", &short).is_err());
}
