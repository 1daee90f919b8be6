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
        ("{{.A | \"b\"}}", "non executable command in pipeline"),
        ("{{\"abc}}", "unterminated quoted string"),
        ("{{.A, .B}}", "unexpected \",\" in operand"),
        ("{{if .A}}{{else nope}}{{end}}", "unexpected else arguments"),
        ("{{/* open", "unclosed comment"),
        (
            "{{range $x = .A}}{{end}}",
            "range can only initialize variables",
        ),
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

/// Go's builtins, variables, `else if`, comments and number literals; every expected
/// string is what the docker CLI (Go's text/template and fmt) printed for the same
/// template on the same data.
#[test]
fn go_builtins_variables_and_literals_as_go_prints_them() {
    let d = json!({
        "Name": "/tp",
        "RestartCount": 0,
        "State": {"Status": "running", "Running": true, "Paused": false, "Restarting": false, "ExitCode": 0},
        "Config": {"Image": "bb", "Cmd": ["sleep", "100"], "Env": ["FOO=bar"], "Labels": {"k1": "v1", "k2": "v2"}},
    });
    let cases = [
        (
            r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#,
            "up",
        ),
        (
            r#"{{printf "%.5s|%-8s|%8s|%q" .Name .Config.Image .Config.Image .Config.Image}}"#,
            r#"/tp|bb      |      bb|"bb""#,
        ),
        (
            r"{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            "k1=v1;k2=v2;",
        ),
        (
            r"{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}",
            "0:sleep 1:100 ",
        ),
        (
            r"{{range $e := .Config.Cmd}}<{{$e}}>{{end}}",
            "<sleep><100>",
        ),
        (
            r"{{$n := .Name}}{{with .Config}}{{$n}}/{{.Image}}{{end}}",
            "/tp/bb",
        ),
        (
            r"{{with $c := .Config}}{{$c.Image}}{{end}} {{$.Name}}",
            "bb /tp",
        ),
        (
            r"{{if and .State.Running (not .State.Paused)}}ok{{end}}",
            "ok",
        ),
        (
            r"{{if or .State.Paused .State.Restarting}}x{{else}}y{{end}}",
            "y",
        ),
        (
            r#"{{and 1 0 2}}|{{or 0 "" "x"}}|{{and 1 2}}|{{or 0 ""}}"#,
            "0|x|2|",
        ),
        (r"{{slice .Name 1 3}}|{{slice .Config.Cmd 1}}", "tp|[100]"),
        (r#"{{.Name | printf "%q"}}"#, r#""/tp""#),
        (
            r"{{if gt .RestartCount 0}}r{{else if eq .RestartCount 0}}zero{{else}}n{{end}}",
            "zero",
        ),
        (r"{{pad .Config.Image 2 3}}|", "  bb   |"),
        (
            r#"{{ne .State.ExitCode 0}} {{lt 1 2}} {{le 2 2}} {{ge "a" "b"}} {{eq .Config.Image "x" "bb" "y"}}"#,
            "false true true false true",
        ),
        (
            r#"{{printf "%d|%5d|%-5d|%05d|%x|%X|%o|%b|%+d" .State.ExitCode 42 42 -42 255 255 8 5 3}}"#,
            "0|   42|42   |-0042|ff|FF|10|101|+3",
        ),
        (
            r#"{{printf "%v|%t|%s" .State.Running .State.Running .Config.Cmd}}"#,
            "true|true|[sleep 100]",
        ),
        (
            r#"{{printf "%s %d" "a"}}|{{printf "%d" "x"}}|{{printf "x" 1 "y"}}"#,
            "a %!d(MISSING)|%!d(string=x)|x%!(EXTRA int=1, string=y)",
        ),
        (
            r#"{{printf "%6.2f|%e|%g|%.3g" 3.14159 1234.5678 0.000012 3.14159}}"#,
            "  3.14|1.234568e+03|1.2e-05|3.14",
        ),
        (
            r#"{{printf "%v|%v|%v|%v|%v|%v|%v" 1234567.0 123456.0 0.0001 0.00001 1e20 1e21 2.5}}"#,
            "1.234567e+06|123456|0.0001|1e-05|1e+20|1e+21|2.5",
        ),
        (
            r#"{{printf "%g|%g|%G|%e|%.2e|%8.3f|%-8.2f|%+.1f|%f" 1234567.0 0.000012 1e-7 0.0 12345.678 3.14159 2.5 2.0 1e21}}"#,
            "1.234567e+06|1.2e-05|1E-07|0.000000e+00|1.23e+04|   3.142|2.50    |+2.0|1000000000000000000000.000000",
        ),
        (
            r#"{{1.5}}|{{print 1.0 2.5}}|{{printf "%d|%v" 3.0 3.0}}"#,
            "1.5|1 2.5|%!d(float64=3)|3",
        ),
        (
            r#"{{printf "%U|%#U|%5.1s|%.0f" 67 68 "hello" 2.5}}|{{0x10}}|{{1e3}}|{{-2}}|{{printf "%v" -0.0}}"#,
            "U+0043|U+0044 'D'|    h|2|16|1000|-2|-0",
        ),
        (
            r#"{{printf "%.3g|%.10g|%g|%#g" 1234.5678 1.0 100000.0 1.5}}"#,
            "1.23e+03|1|100000|1.50000",
        ),
        (
            r#"{{'a'}}|{{printf "%c" 'z'}}|{{len "héllo"}}|{{slice "héllo" 0 1}}"#,
            "97|z|6|h",
        ),
        (
            r#"{{print nil}}|{{println 1 nil "x"}}|{{printf "%v %s %d" nil nil nil}}"#,
            "<nil>|1 <nil> x\n|<nil> %!s(<nil>) %!d(<nil>)",
        ),
        (
            r#"{{lt 1 2}}|{{eq "a" "a"}}|{{eq true true}}"#,
            "true|true|true",
        ),
        (
            r"{{range $i, $c := .Config.Cmd}}{{if $i}},{{end}}{{$c}}{{end}}",
            "sleep,100",
        ),
        (
            r"{{- range .Config.Cmd}} [{{.}}] {{- end}}",
            " [sleep] [100]",
        ),
        (
            r"{{$x := .Name}}{{range .Config.Cmd}}{{$x}}{{.}}{{end}}",
            "/tpsleep/tp100",
        ),
        (
            r#"{{printf "%08.3f|%-08d|%+05d|%x|%X|% x" -3.14159 7 7 -255 "Hi" "ab"}}"#,
            "-003.142|7       |+0007|-ff|4869|61 62",
        ),
        (
            r#"{{printf "%5t|%-7v|%3.1v" true "ab" "abc"}}"#,
            " true|ab     |  a",
        ),
        (
            r#"{{printf "%q" "a\"b\\c\n\t\x01é"}}|{{printf "%+q" "é"}}"#,
            r#""a\"b\\c\n\t\x01é"|"\u00e9""#,
        ),
        (
            r#"{{printf "%s" .Config.Labels}}|{{printf "%d" .Config.Labels}}"#,
            "map[k1:v1 k2:v2]|map[%!d(string=k1):%!d(string=v1) %!d(string=k2):%!d(string=v2)]",
        ),
        (
            r#"{{printf "%*d|%-*d|%.*f" 5 1 5 1 2 3.14159}}"#,
            "    1|1    |3.14",
        ),
        (r#"{{ge 2 1}}{{le 1 1}}{{gt "b" "a"}}"#, "truetruetrue"),
        (
            r#"{{html "<a&'b\">"}} {{js "it's <x>"}} {{urlquery "a b&c"}}"#,
            r#"&lt;a&amp;&#39;b&#34;&gt; it\'s \u003Cx\u003E a+b%26c"#,
        ),
        ("{{/* comment */}}x{{- /* trimmed */ -}} y", "xy"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
        (
            r#"{{(index .Config.Cmd 0)}} {{(.Config).Image}} {{(.State).Status | printf "%.3s"}}"#,
            "sleep bb run",
        ),
    ];
    for (t, want) in cases {
        assert_eq!(ok(t, &d), want, "{t}");
    }
    // Go's field names of JSON keys (Docker's typed structs): ID for Id, NanoCPUs for
    // NanoCpus; fewer capitals than the key is no field.
    let c = json!({"Id": "abc", "HostConfig": {"NanoCpus": 5, "Dns": []}});
    assert_eq!(
        ok(
            "{{.ID}} {{.Id}} {{.HostConfig.NanoCPUs}} {{.HostConfig.DNS}}",
            &c
        ),
        "abc abc 5 []"
    );
    assert!(render("{{.id}}", &c).is_err());
    // A method with an argument, as Docker's `.Label "k"`: a map from argument to result.
    let row = json!({"Labels": "a=1,b=2", "Label": {"a": "1", "b": "2"}});
    assert_eq!(
        ok(r#"{{.Label "b"}}|{{.Label "nope"}}|{{"a" | .Label}}"#, &row),
        "2||1"
    );
    let e = render("{{.Labels .Labels}}", &row).unwrap_err().to_string();
    assert!(
        e.contains("can't give argument to non-function .Labels"),
        "{e}"
    );
    // Go's comparison errors.
    for (t, want) in [
        ("{{eq 1 1.0}}", "incompatible types for comparison"),
        ("{{lt .Config.Cmd 1}}", "invalid type for comparison"),
        ("{{$nope}}", "undefined variable: $nope"),
    ] {
        let e = render(t, &d).unwrap_err().to_string();
        assert!(e.contains(want), "{t}: {e}");
    }
}

/// Go takes precisions up to a million, Rust's formatter up to `u16::MAX`: `%.70000f`
/// panicked (a go_template fuzzer find). Past an f64's exact digits Go writes zeros.
#[test]
fn float_precisions_past_rusts_formatter_limit() {
    let f = |fmt: &str| crate::printf::sprintf(fmt, &[serde_json::json!(1.5)]);
    let zeros = |t: &str| t.bytes().all(|b| b == b'0');
    let t = f("%.70000f");
    assert_eq!(t.len(), 70_002);
    assert!(t.starts_with("1.5") && zeros(&t[3..]));
    let t = f("%.70000e");
    assert_eq!(t.len(), 70_006);
    assert!(t.starts_with("1.5") && t.ends_with("e+00") && zeros(&t[3..t.len() - 4]));
    assert_eq!(f("%.70000g"), "1.5");
    let t = f("%#.70000g");
    assert_eq!(t.len(), 70_001);
    assert!(t.starts_with("1.5") && zeros(&t[3..]));
    // Below the limit the digits are Rust's (exact): 0.1 is not 0.1000... at 60 places.
    assert_eq!(
        crate::printf::sprintf("%.60f", &[serde_json::json!(0.1)]),
        "0.100000000000000005551115123125782702118158340454101562500000"
    );
}
