//! `--format`: Go templates as the docker CLI evaluates them, on the
//! JSON the engine produces. The language itself (fields, `range`, `if`,
//! `with`, `index`, `len`, `eq`, `printf`, pipelines, variables) is the
//! gtmpl crate's; this module converts the JSON, adds Docker's functions
//! (`json`, `join`, `split`, `lower`, `upper`, `title`, `truncate`, `pad`,
//! `println`) and prints values as Go does (`[a b]`, `map[k:v]`,
//! `<no value>`).

use gtmpl_value::{FuncError, Value as G};
use serde_json::Value;

use crate::error::EngineError;

/// JSON as a template value (objects keep their keys; numbers that are
/// integers stay integers).
fn to_gtmpl(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => G::from(i),
            (None, Some(u)) => G::from(u),
            _ => G::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_gtmpl).collect()),
        // As Go structs: a field that is not there is an error, as in
        // the docker CLI (`{{.Nope}}`), not `<no value>`.
        Value::Object(o) => {
            let mut m: std::collections::HashMap<String, G> =
                o.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect();
            if o.contains_key("Labels") && !o.contains_key("Label") {
                // The docker CLI's `{{.Label "key"}}` method.
                m.insert(
                    "Label".into(),
                    G::Function(gtmpl_value::Function { f: label_fn }),
                );
            }
            G::Object(m)
        }
    }
}

/// `{{.Label "key"}}`: the value of label `key` of the receiver (whose
/// `Labels` is a map, or `k=v,…` as `ps` shows it), empty when unset.
fn label_fn(args: &[G]) -> Result<G, FuncError> {
    let key = string_arg(args, 1, "Label")?;
    let labels = match args.first() {
        Some(G::Object(o) | G::Map(o)) => o.get("Labels").cloned(),
        _ => None,
    };
    Ok(G::String(match labels {
        Some(G::Object(m) | G::Map(m)) => m.get(&key).map(|v| v.to_string()).unwrap_or_default(),
        Some(G::String(s)) => s
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default(),
        _ => String::new(),
    }))
}

/// A template value as JSON (for `json`).
fn to_json(v: &G) -> Value {
    match v {
        G::Nil | G::NoValue => Value::Null,
        G::Bool(b) => Value::Bool(*b),
        G::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        G::String(s) => Value::String(s.clone()),
        G::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        G::Map(m) | G::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !matches!(v, G::Function(_)))
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        G::Function(_) => Value::Null,
    }
}

fn string_arg(args: &[G], i: usize, name: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(G::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::Generic(format!("{name}: too few arguments"))),
    }
}

fn json_fn(args: &[G]) -> Result<G, FuncError> {
    let v = args
        .first()
        .ok_or(FuncError::AtLeastXArgs("json".into(), 1))?;
    Ok(G::String(to_json(v).to_string()))
}

fn join_fn(args: &[G]) -> Result<G, FuncError> {
    let sep = string_arg(args, 1, "join")?;
    match args.first() {
        Some(G::Array(a)) => Ok(G::String(
            a.iter().map(go_string).collect::<Vec<_>>().join(&sep),
        )),
        Some(other) => Ok(G::String(go_string(other))),
        None => Err(FuncError::AtLeastXArgs("join".into(), 2)),
    }
}

fn split_fn(args: &[G]) -> Result<G, FuncError> {
    let s = string_arg(args, 0, "split")?;
    let sep = string_arg(args, 1, "split")?;
    Ok(G::Array(
        s.split(sep.as_str()).map(|p| G::String(p.into())).collect(),
    ))
}

fn lower_fn(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(string_arg(args, 0, "lower")?.to_lowercase()))
}

fn upper_fn(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(string_arg(args, 0, "upper")?.to_uppercase()))
}

fn title_fn(args: &[G]) -> Result<G, FuncError> {
    let s = string_arg(args, 0, "title")?;
    let mut out = String::new();
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(G::String(out))
}

fn truncate_fn(args: &[G]) -> Result<G, FuncError> {
    let s = string_arg(args, 0, "truncate")?;
    let n: usize = string_arg(args, 1, "truncate")?
        .parse()
        .map_err(|_| FuncError::Generic("truncate: a length".into()))?;
    Ok(G::String(s.chars().take(n).collect()))
}

fn pad_fn(args: &[G]) -> Result<G, FuncError> {
    let s = string_arg(args, 0, "pad")?;
    let n = |i| -> Result<usize, FuncError> {
        string_arg(args, i, "pad")?
            .parse()
            .map_err(|_| FuncError::Generic("pad: a number".into()))
    };
    Ok(G::String(format!(
        "{}{s}{}",
        " ".repeat(n(1)?),
        " ".repeat(n(2)?)
    )))
}

fn println_fn(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(format!(
        "{}\n",
        args.iter().map(go_string).collect::<Vec<_>>().join(" ")
    )))
}

/// A value as Go's `%v` prints it.
fn go_string(v: &G) -> String {
    match v {
        G::Nil | G::NoValue => "<no value>".into(),
        G::String(s) => s.clone(),
        G::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        G::Map(m) | G::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            format!(
                "map[{}]",
                keys.iter()
                    .map(|k| format!("{k}:{}", go_string(&m[*k])))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
        other => other.to_string(),
    }
}

fn gostr_fn(args: &[G]) -> Result<G, FuncError> {
    Ok(G::String(args.first().map(go_string).unwrap_or_default()))
}

/// Words that start an action which prints nothing of its own.
const CONTROL: [&str; 10] = [
    "if", "else", "end", "range", "with", "define", "template", "block", "break", "continue",
];

/// Rewrites each printing action `{{PIPELINE}}` as `{{PIPELINE | __gostr}}`,
/// so its value prints as Go prints it (gtmpl's own printing of arrays
/// and maps is not Go's). Control actions, comments and variable
/// declarations are left as they are.
fn print_as_go(template: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        // The closing braces outside a quoted string.
        let mut close = None;
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        for (i, c) in after.char_indices() {
            match quote {
                Some(q) if c == q && prev != '\\' => quote = None,
                Some(_) => {}
                None if c == '"' || c == '`' => quote = Some(c),
                None if c == '}' && after[i..].starts_with("}}") => {
                    close = Some(i);
                    break;
                }
                None => {}
            }
            prev = c;
        }
        let Some(close) = close else {
            // Unclosed: the parser reports it.
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &after[..close];
        let trim_left = inner.starts_with('-');
        let trim_right = inner.ends_with('-') && inner.len() > 1;
        let body = inner
            .strip_prefix('-')
            .unwrap_or(inner)
            .strip_suffix('-')
            .filter(|_| trim_right)
            .unwrap_or(inner.strip_prefix('-').unwrap_or(inner))
            .trim();
        let first = body.split_whitespace().next().unwrap_or("");
        let keeps = body.is_empty()
            || body.starts_with("/*")
            || CONTROL.contains(&first)
            || body.contains(":=")
            || (first.starts_with('$') && body.split_whitespace().nth(1) == Some("="));
        out.push_str("{{");
        if keeps {
            out.push_str(inner);
        } else {
            if trim_left {
                out.push_str("- ");
            }
            out.push_str(body);
            out.push_str(" | __gostr");
            if trim_right {
                out.push_str(" -");
            }
        }
        out.push_str("}}");
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Evaluates `template` against `v` as the docker CLI would.
pub fn render(template: &str, v: &Value) -> Result<String, EngineError> {
    let bad = |why: String| EngineError::InvalidOption {
        option: "--format",
        value: template.to_string(),
        reason: why,
    };
    let mut t = gtmpl::Template::default();
    let funcs: [(&str, gtmpl_value::Func); 9] = [
        ("json", json_fn),
        ("join", join_fn),
        ("split", split_fn),
        ("lower", lower_fn),
        ("upper", upper_fn),
        ("title", title_fn),
        ("truncate", truncate_fn),
        ("pad", pad_fn),
        ("println", println_fn),
    ];
    for (name, f) in funcs {
        t.add_func(name, f);
    }
    t.add_func("__gostr", gostr_fn);
    t.parse(print_as_go(template))
        .map_err(|e| bad(e.to_string()))?;
    let ctx = gtmpl::Context::from(to_gtmpl(v));
    t.render(&ctx).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        render(t, v).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn docker_templates_render_as_the_docker_cli_renders_them() {
        let v = json!({
            "Name": "/web", "State": {"Pid": 42, "Running": true},
            "Args": ["-c", "x"], "Labels": {"b": "2", "a": "1"},
            "Mounts": [{"Source": "/s", "Destination": "/d"}], "Nothing": null,
        });
        assert_eq!(r("{{.State.Pid}} {{.Name}}", &v), "42 /web");
        assert_eq!(
            r("{{json .State.Running}} {{json .Args}}", &v),
            r#"true ["-c","x"]"#
        );
        assert_eq!(r("{{.Args}}", &v), "[-c x]");
        assert_eq!(r("{{.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(r("{{index .Labels \"a\"}}", &v), "1");
        assert_eq!(r("{{.Label \"b\"}}|{{.Label \"zz\"}}", &v), "2|");
        assert_eq!(r("{{.Label \"y\"}}", &json!({"Labels": "x=1,y=2"})), "2");
        assert!(
            !r("{{json .}}", &v).contains("Label\""),
            "{}",
            r("{{json .}}", &v)
        );
        assert_eq!(
            r("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", &v),
            "/s:/d "
        );
        assert_eq!(
            r("{{range $k, $v := .Labels}}{{$k}}={{$v}},{{end}}", &v),
            "a=1,b=2,"
        );
        assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}", &v), "up");
        assert_eq!(
            r("{{join .Args \",\"}} {{upper .Name}} {{len .Args}}", &v),
            "-c,x /WEB 2"
        );
        assert_eq!(r("{{.Nothing}}", &v), "<no value>");
        let e = render("{{.Nope}}", &v).unwrap_err().to_string();
        assert!(
            e.contains("can't evaluate field Nope") && e.len() < 200,
            "{e}"
        );
        assert_eq!(
            r("{{title \"hello world\"}} {{truncate .Name 2}}", &v),
            "Hello World /w"
        );
        assert_eq!(r("{{json .}}", &json!({"a": [1, 2]})), r#"{"a":[1,2]}"#);
        assert!(render("{{.Name", &v).is_err());
        assert!(render("{{nosuchfunc .Name}}", &v).is_err());
    }
}
