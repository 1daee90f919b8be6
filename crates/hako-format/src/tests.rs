use serde_json::json;

use super::{Format, FormatError, Template, align};

fn render(t: &str, data: &serde_json::Value) -> Result<String, FormatError> {
    Template::parse(t)?.execute(data)
}

fn ok(t: &str, data: &serde_json::Value) -> String {
    render(t, data).unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn image() -> serde_json::Value {
    json!({
        "Id": "sha256:abc",
        "RepoTags": ["busybox:latest", "bb:1"],
        "Config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"b": "2", "a": "1"}, "Entrypoint": null},
        "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]},
        "Size": 4096,
        "Html": "<a&b>",
    })
}

#[test]
fn fields_and_text() {
    let d = json!({"Repository": "busybox", "Tag": "latest"});
    assert_eq!(ok("{{.Repository}}:{{.Tag}}", &d), "busybox:latest");
    assert_eq!(ok("plain", &d), "plain");
    assert_eq!(ok("{{.Id}}", &image()), "sha256:abc");
    assert_eq!(ok("{{.RootFS.Type}}", &image()), "layers");
    assert_eq!(ok("{{.Size}}", &image()), "4096");
}

#[test]
fn go_printing_of_lists_maps_and_nil() {
    assert_eq!(ok("{{.RootFS.Layers}}", &image()), "[sha256:l1 sha256:l2]");
    assert_eq!(ok("{{.Config.Labels}}", &image()), "map[a:1 b:2]");
    assert_eq!(ok("{{.Config.Entrypoint}}", &image()), "<no value>");
    assert_eq!(ok("{{.Config.Entrypoint.Foo}}", &image()), "<no value>");
}

#[test]
fn json_function() {
    assert_eq!(ok("{{json .Config.Cmd}}", &image()), r#"["sh"]"#);
    assert_eq!(
        ok("{{json .RootFS}}", &image()),
        r#"{"Layers":["sha256:l1","sha256:l2"],"Type":"layers"}"#
    );
    assert_eq!(ok("{{json .Html}}", &image()), r#""\u003ca\u0026b\u003e""#);
    assert_eq!(ok("{{.Config.Cmd | json}}", &image()), r#"["sh"]"#);
}

#[test]
fn index_function() {
    assert_eq!(ok("{{index .RepoTags 0}}", &image()), "busybox:latest");
    assert_eq!(ok("{{index .RepoTags 1}}", &image()), "bb:1");
    assert_eq!(ok("{{index .Config.Labels \"a\"}}", &image()), "1");
    assert_eq!(ok("{{index .Config \"Env\" 0}}", &image()), "PATH=/bin");
    let e = render("{{index .RepoTags 5}}", &image()).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"template: :1:2: executing "" at <index .RepoTags 5>: error calling index: index out of range: 5"#
    );
}

#[test]
fn range_and_else() {
    assert_eq!(
        ok("{{range .RootFS.Layers}}{{.}} {{end}}", &image()),
        "sha256:l1 sha256:l2 "
    );
    assert_eq!(
        ok("{{range .Config.Labels}}[{{.}}]{{end}}", &image()),
        "[1][2]"
    );
    assert_eq!(
        ok(
            "{{range .Nothing}}x{{else}}empty{{end}}",
            &json!({"Nothing": []})
        ),
        "empty"
    );
    assert_eq!(ok("{{range .N}}x{{end}}", &json!({"N": null})), "");
    assert_eq!(
        ok(
            "{{range .L}}{{range .}}{{.}}{{end}};{{end}}",
            &json!({"L": [[1, 2], [3]]})
        ),
        "12;3;"
    );
}

#[test]
fn if_and_with() {
    let d = json!({"A": true, "B": "", "C": {"D": "x"}});
    assert_eq!(ok("{{if .A}}yes{{else}}no{{end}}", &d), "yes");
    assert_eq!(ok("{{if .B}}yes{{else}}no{{end}}", &d), "no");
    assert_eq!(ok("{{with .C}}{{.D}}{{end}}", &d), "x");
}

#[test]
fn string_functions() {
    let d = json!({"S": "Hello World", "L": ["a", "b", "c"]});
    assert_eq!(ok("{{upper .S}}", &d), "HELLO WORLD");
    assert_eq!(ok("{{lower .S}}", &d), "hello world");
    assert_eq!(ok("{{.S | lower | upper}}", &d), "HELLO WORLD");
    assert_eq!(ok("{{join .L \",\"}}", &d), "a,b,c");
    assert_eq!(ok("{{join .L `, `}}", &d), "a, b, c");
    assert_eq!(ok("{{title \"foo bar\"}}", &d), "Foo Bar");
    assert_eq!(ok("{{len .L}}", &d), "3");
    assert_eq!(ok("{{split \"a:b\" \":\"}}", &d), "[a b]");
    assert_eq!(ok("{{truncate .S 5}}", &d), "Hello");
    assert_eq!(ok("{{join (split \"a:b\" \":\") \"-\"}}", &d), "a-b");
}

#[test]
fn escapes_and_trim_markers() {
    let d = json!({"A": "1", "B": "2"});
    assert_eq!(ok(r"{{.A}}\t{{.B}}\n", &d), "1\t2\n");
    assert_eq!(ok("{{.A}}   {{- .B}}", &d), "12");
    assert_eq!(ok("{{.A -}}   {{.B}}", &d), "12");
    assert_eq!(ok("{{\"q\\\"t\"}}", &d), "q\"t");
}

#[test]
fn unknown_field_error_is_docker_shaped() {
    let e = render("{{.Nope}}", &json!({"ID": "x"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"template: :1:2: executing "" at <.Nope>: can't evaluate field Nope"#
    );
    let e = render(
        "{{.ID}} {{.Config.Nope}}",
        &json!({"ID": "x", "Config": {}}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"template: :1:10: executing "" at <.Config.Nope>: can't evaluate field Nope"#
    );
    let e = render("{{.ID.Foo}}", &json!({"ID": "x"})).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("can't evaluate field Foo in type string"),
        "{e}"
    );
    let e = render("a\n{{.X}}", &json!({})).unwrap_err();
    assert!(e.to_string().starts_with("template: :2:2:"), "{e}");
}

#[test]
fn parse_errors() {
    let cases = [
        ("{{.ID", "unclosed action"),
        ("{{nope .ID}}", r#"function "nope" not defined"#),
        ("{{range .L}}x", "unexpected EOF"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{}}", "missing value for command"),
        ("{{.A .B}}", "can't give argument to non-function .A"),
        ("{{.A | .B}}", "non executable command in pipeline"),
        ("{{\"abc}}", "unterminated quoted string"),
        ("{{$x := .A}}", "variables are not supported"),
    ];
    for (t, want) in cases {
        match Template::parse(t) {
            Err(e @ FormatError::Parse { .. }) => {
                let s = e.to_string();
                assert!(
                    s.starts_with("template parsing error: template: :1: "),
                    "{t}: {s}"
                );
                assert!(s.contains(want), "{t}: {s} lacks {want}");
            }
            other => panic!("{t}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn table_format_aligns_and_adds_header() {
    let f = Format::parse(r"table {{.ID}}\t{{.Size}}", "").expect("parse");
    assert!(f.is_table());
    let header = json!({"ID": "IMAGE ID", "Size": "SIZE"});
    let rows = [
        json!({"ID": "0123456789ab", "Size": "4.26MB"}),
        json!({"ID": "ba9876543210", "Size": "1.2GB"}),
    ];
    assert_eq!(
        f.render(&header, &rows).expect("render"),
        "IMAGE ID       SIZE\n0123456789ab   4.26MB\nba9876543210   1.2GB\n"
    );
}

#[test]
fn default_json_and_plain_formats() {
    let def = r"table {{.A}}\t{{.B}}";
    let header = json!({"A": "A", "B": "B"});
    let rows = [json!({"A": "1", "B": "2"})];
    let f = Format::parse("", def).expect("parse");
    assert!(f.is_table());
    assert_eq!(
        f.render(&header, &rows).expect("render"),
        "A         B\n1         2\n"
    );
    let f = Format::parse("json", def).expect("parse");
    assert_eq!(
        f.render(&header, &rows).expect("render"),
        "{\"A\":\"1\",\"B\":\"2\"}\n"
    );
    let f = Format::parse("{{.A}}-{{.B}}", def).expect("parse");
    assert!(!f.is_table());
    assert_eq!(f.render(&header, &rows).expect("render"), "1-2\n");
    // "tablex" is not the table keyword.
    assert!(!Format::parse("tablex", def).expect("parse").is_table());
}

#[test]
fn tabwriter_min_width_padding_and_unicode() {
    assert_eq!(
        align("a\tb\nlonger-than-ten\tc"),
        "a                 b\nlonger-than-ten   c"
    );
    assert_eq!(align("é\tx"), "é         x");
    assert_eq!(align("no tabs"), "no tabs");
}
