//! `docs/manifest.md` against the manifest parser (`Manifest::parse`): the
//! page's key tables list exactly the keys the parser accepts, with the
//! parser's defaults; its examples parse; its table of what each world may
//! use is what the parser enforces; and the default `[limits]` figures are the
//! same wherever the docs state them.

use std::collections::BTreeSet;

use exesdb_host::runtime::manifest::Limits;
use exesdb_host::runtime::Manifest;
use serde_json::Value;

const PAGE: &str = include_str!("../../../docs/manifest.md");
const PLUGINS_PAGE: &str = include_str!("../../../docs/plugins.md");
const README: &str = include_str!("../../../README.md");

/// Where a key lives: at the top level, or in a table / array of tables.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Top,
    Section(String),
}

/// One row of a key table.
#[derive(Debug, Clone)]
struct Row {
    place: Place,
    key: String,
    default: String,
}

impl Row {
    fn path(&self) -> String {
        match &self.place {
            Place::Top => self.key.clone(),
            Place::Section(s) => format!("{s}.{}", self.key),
        }
    }
}

/// The backticked `[name]` / `[[name]]` sections a heading names.
fn sections_of(heading: &str) -> Vec<String> {
    heading
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with('[') && s.ends_with(']'))
        .map(|s| s.trim_matches(|c| c == '[' || c == ']').to_owned())
        .collect()
}

fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

/// The rows of every `| key | type | default | meaning |` table of the page,
/// and every section the page has a heading for.
fn documented() -> (Vec<Row>, BTreeSet<String>) {
    let mut rows = Vec::new();
    let mut sections = BTreeSet::new();
    let mut places = vec![Place::Top];
    let mut in_table = false;
    let mut in_code = false;
    for line in PAGE.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            let named = sections_of(line);
            sections.extend(named.iter().cloned());
            places = if named.is_empty() {
                vec![Place::Top]
            } else {
                named.into_iter().map(Place::Section).collect()
            };
            in_table = false;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let c = cells(line);
        if c == ["key", "type", "default", "meaning"] {
            in_table = true;
            continue;
        }
        if !in_table || c[0].starts_with("---") {
            continue;
        }
        let key = c[0].trim_matches('`').to_owned();
        assert!(
            c.len() == 4 && c[0] == format!("`{key}`"),
            "malformed row: {line}"
        );
        for place in &places {
            rows.push(Row {
                place: place.clone(),
                key: key.clone(),
                default: c[2].clone(),
            });
        }
    }
    (rows, sections)
}

/// The ```` ```lang ```` blocks of a page.
fn blocks(page: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match &mut current {
            None if line.trim() == format!("```{lang}") => current = Some(String::new()),
            Some(text) if line.trim() == "```" => {
                out.push(std::mem::take(text));
                current = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

fn parse(table: &toml::Table) -> Result<Manifest, exesdb_host::runtime::manifest::ManifestError> {
    Manifest::parse(&toml::to_string(table).unwrap(), "manifest.md")
}

/// The table holding `place`'s keys in `root` (the first element of an
/// array of tables), if the manifest has that section.
fn context<'a>(root: &'a mut toml::Table, place: &Place) -> Option<&'a mut toml::Table> {
    match place {
        Place::Top => Some(root),
        Place::Section(s) => match root.get_mut(s)? {
            toml::Value::Table(t) => Some(t),
            toml::Value::Array(a) => a.first_mut()?.as_table_mut(),
            _ => None,
        },
    }
}

/// The parsed manifest's value for a key, as the parser's serialisation shows it.
fn value_at<'a>(json: &'a Value, place: &Place, key: &str) -> &'a Value {
    let section = match place {
        Place::Top => json,
        Place::Section(s) => match &json[s.as_str()] {
            Value::Array(a) => &a[0],
            other => other,
        },
    };
    &section[key]
}

/// The first example of the page that has `row`'s key, as a table.
fn example_with(row: &Row) -> toml::Table {
    blocks(PAGE, "toml")
        .iter()
        .map(|b| b.parse::<toml::Table>().unwrap())
        .find(|t| {
            let mut t = t.clone();
            context(&mut t, &row.place).is_some_and(|c| c.contains_key(&row.key))
        })
        .unwrap_or_else(|| panic!("no example on the page uses `{}`", row.path()))
}

/// Every key the parser has: the fields of a manifest with one entry in each
/// array of tables, as it serialises them (absent optional fields as null).
/// Returns (keys, sections, free-form sections).
fn parser_keys() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let full = r#"
        name = "p"
        version = "1"
        world = "subscriber"
        [[subscribe]]
        channel = "events"
        pattern = ">"
        [[publish]]
        channel = "events"
        pattern = ">"
        [[store_subscription]]
        selector = "$all"
    "#;
    let m = Manifest::parse(full, "full.toml").unwrap();
    let json = serde_json::to_value(&m).unwrap();
    let (mut keys, mut sections, mut free) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (k, v) in json.as_object().unwrap() {
        // `[secrets]` maps names of the plugin's choosing to sources: it has
        // no fixed keys (see `secrets_are_documented_as_the_parser_reads_them`).
        if k == "secrets" {
            continue;
        }
        let fields = match v {
            Value::Object(o) => Some(o),
            Value::Array(a) => Some(a[0].as_object().unwrap()),
            _ => None,
        };
        match fields {
            None => {
                keys.insert(k.clone());
            }
            Some(o) => {
                sections.insert(k.clone());
                if o.is_empty() {
                    free.insert(k.clone());
                }
                keys.extend(o.keys().map(|f| format!("{k}.{f}")));
            }
        }
    }
    (keys, sections, free)
}

#[test]
fn the_tables_list_exactly_the_keys_the_parser_accepts() {
    let (rows, mut sections) = documented();
    assert!(sections.remove("secrets"), "a `[secrets]` heading");
    let documented: BTreeSet<String> = rows.iter().map(Row::path).collect();
    let (keys, parser_sections, free) = parser_keys();
    assert!(keys.len() >= 20, "too few parser keys: {keys:?}");
    let undocumented: Vec<_> = keys.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&keys).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "keys the parser accepts but the page does not list: {undocumented:?}; \
         keys the page lists but the parser does not accept: {unknown:?}"
    );
    assert_eq!(sections, parser_sections, "sections with a heading");
    assert_eq!(
        free,
        BTreeSet::from(["config".to_owned()]),
        "free-form sections"
    );
    // A free-form section takes any key; every other table refuses one it
    // does not know, naming it.
    for section in &sections {
        let mut t: toml::Table = "name = \"p\"\nversion = \"1\"\nworld = \"subscriber\""
            .parse()
            .unwrap();
        let mut entry = toml::Table::new();
        entry.insert("no_such_key".into(), 1.into());
        if let Some(row) = rows
            .iter()
            .find(|r| r.place == Place::Section(section.clone()))
        {
            let mut example = example_with(row);
            let c = context(&mut example, &row.place).unwrap();
            entry = c.clone();
            entry.insert("no_such_key".into(), 1.into());
            if example.get(section).is_some_and(toml::Value::is_array) {
                t.insert(section.clone(), vec![toml::Value::Table(entry)].into());
            } else {
                t.insert(section.clone(), entry.into());
            }
        } else {
            t.insert(section.clone(), entry.into());
        }
        let result = parse(&t);
        if free.contains(section) {
            assert!(result.is_ok(), "[{section}] is free-form: {result:?}");
        } else {
            let err = result.expect_err(section);
            assert!(
                err.key
                    .as_deref()
                    .unwrap_or("")
                    .starts_with(section.as_str())
                    && err
                        .to_string()
                        .contains("unknown field `no_such_key`, expected "),
                "[{section}]: {err}"
            );
        }
    }
}

#[test]
fn the_documented_defaults_are_the_parsers() {
    let (rows, _) = documented();
    for row in &rows {
        let mut example = example_with(row);
        context(&mut example, &row.place)
            .unwrap()
            .remove(&row.key)
            .unwrap();
        let result = parse(&example);
        let d = row.default.as_str();
        if d == "required" {
            let err = result.expect_err(&row.path());
            assert!(
                err.to_string().contains(&format!("`{}`", row.key)),
                "{}: {err}",
                row.path()
            );
            continue;
        }
        let m = result.unwrap_or_else(|e| panic!("{} is optional: {e}", row.path()));
        let json = serde_json::to_value(&m).unwrap();
        let got = value_at(&json, &row.place, &row.key);
        let literal = d
            .strip_prefix('`')
            .and_then(|s| s.strip_suffix('`'))
            .filter(|s| !s.contains('`'));
        match literal {
            Some(text) => {
                let expected: toml::Table = format!("v = {text}").parse().unwrap();
                let expected = serde_json::to_value(&expected["v"]).unwrap();
                assert_eq!(got, &expected, "default of {}", row.path());
            }
            None => assert!(
                got.is_null(),
                "{}: documented as `{d}`, the parser gives {got}",
                row.path()
            ),
        }
    }
    // The figures the page states are those of `Limits::default()`.
    let limits = Limits::default();
    let default_of = |key: &str| {
        rows.iter()
            .find(|r| r.path() == format!("limits.{key}"))
            .unwrap()
            .default
            .clone()
    };
    assert_eq!(default_of("memory_mb"), format!("`{}`", limits.memory_mb));
    assert_eq!(
        default_of("call_timeout_ms"),
        format!("`{}`", limits.call_timeout_ms)
    );
}

#[test]
fn every_example_parses_and_uses_only_documented_keys() {
    let examples = blocks(PAGE, "toml");
    assert!(
        examples.len() >= 3,
        "the page has {} examples",
        examples.len()
    );
    for (i, text) in examples.iter().enumerate() {
        Manifest::parse(text, &format!("manifest.md example {i}"))
            .unwrap_or_else(|e| panic!("example {i} does not parse: {e}\n{text}"));
    }
    // plugins.md's manifests (its TOML blocks with a `world`).
    let guide: Vec<String> = blocks(PLUGINS_PAGE, "toml")
        .into_iter()
        .filter(|b| {
            b.parse::<toml::Table>()
                .is_ok_and(|t| t.contains_key("world"))
        })
        .collect();
    assert!(!guide.is_empty(), "plugins.md shows a manifest");
    for text in &guide {
        Manifest::parse(text, "plugins.md")
            .unwrap_or_else(|e| panic!("plugins.md's manifest does not parse: {e}\n{text}"));
    }
    // The first example is a subscriber using every key a subscriber may use.
    let (rows, _) = documented();
    let mut first: toml::Table = examples[0].parse().unwrap();
    for row in rows.iter().filter(|r| r.key != "tick_interval_ms") {
        assert!(
            context(&mut first, &row.place).is_some_and(|c| c.contains_key(&row.key)),
            "the complete example lacks `{}`",
            row.path()
        );
    }
    // What `init` receives from its `[config]`.
    let m = Manifest::parse(&examples[0], "example").unwrap();
    let json = blocks(PAGE, "json");
    assert_eq!(json.len(), 1, "one JSON block: the example's config");
    assert_eq!(json[0].trim(), m.config_json());
}

#[test]
fn the_world_table_is_what_the_parser_enforces() {
    let mut header: Option<Vec<String>> = None;
    let mut checked = 0;
    let complete: toml::Table = blocks(PAGE, "toml")[0].parse().unwrap();
    for line in PAGE.lines() {
        if !line.starts_with('|') {
            header = None;
            continue;
        }
        let c = cells(line);
        if c.first().map(String::as_str) == Some("key") && c.len() == 4 && c[1].contains('`') {
            header = Some(c);
            continue;
        }
        let Some(h) = &header else { continue };
        if c[0].starts_with("---") {
            continue;
        }
        let key = c[0].trim_matches('`');
        let section = key.trim_matches(|ch| ch == '[' || ch == ']');
        for (world, cell) in h.iter().zip(&c).skip(1) {
            let world = world.trim_matches('`');
            let mut t: toml::Table = format!("name = \"p\"\nversion = \"1\"\nworld = \"{world}\"")
                .parse()
                .unwrap();
            if key.starts_with('[') {
                t.insert(section.into(), complete[section].clone());
            } else {
                t.insert(key.into(), 5000.into());
            }
            let result = parse(&t);
            assert_eq!(
                result.is_ok(),
                cell.starts_with("yes"),
                "{key} in world {world}: documented `{cell}`, parser: {result:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12, "4 keys × 3 worlds");
}

/// The figure stated right after `key` ("`memory_mb`, default 64",
/// "memory_mb = 64  # default 64") on each line of `page` that states one.
fn stated_defaults(page: &str, key: &str) -> Vec<u64> {
    let mut out = Vec::new();
    for line in page.lines() {
        for (at, _) in line.match_indices(key) {
            let before = line[..at].chars().next_back();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &line[at + key.len()..];
            let end = rest.find([';', '|', '(']).unwrap_or(rest.len());
            let segment = &rest[..end];
            if let Some(d) = segment.find("default") {
                let digits: String = segment[d + "default".len()..]
                    .trim_start()
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(n) = digits.parse() {
                    out.push(n);
                }
            }
        }
    }
    out
}

#[test]
fn the_limits_defaults_are_the_same_everywhere() {
    let limits = Limits::default();
    for (page, name) in [(README, "README.md"), (PLUGINS_PAGE, "docs/plugins.md")] {
        for (key, default) in [
            ("memory_mb", limits.memory_mb),
            ("call_timeout_ms", limits.call_timeout_ms),
        ] {
            let stated = stated_defaults(page, key);
            assert!(!stated.is_empty(), "{name} states no default for {key}");
            assert!(
                stated.iter().all(|&n| n == default),
                "{name} states {key} defaults {stated:?}; the parser's is {default}"
            );
        }
    }
}

#[test]
fn the_documented_errors_are_the_parsers() {
    // The page's error lines, in order, and the manifests that cause them.
    let base = "name = \"p\"\nversion = \"1\"\nworld = \"subscriber\"\n";
    let causes = [
        format!("{base}[limits]\nmemory_mb = 0\n"),
        format!("{base}[[subscribe]]\nchannel = \"events\"\npattern = \"a:>:b\"\n"),
        format!("{base}tick_interval_ms = 5\n"),
        format!("{base}[limits]\nmemroy_mb = 64\n"),
        format!("{base}[[store_subscription]]\nselector = \"$all\"\nstart = 42\n"),
        "version = \"1\"\nworld = \"subscriber\"\n".to_owned(),
    ];
    let text = blocks(PAGE, "text");
    let documented: Vec<&str> = text
        .iter()
        .find(|b| b.starts_with("plugin manifest "))
        .expect("the page shows the parser's errors")
        .lines()
        .collect();
    assert_eq!(documented.len(), causes.len());
    for (line, cause) in documented.iter().zip(&causes) {
        let err = Manifest::parse(cause, "plugins/p.toml").unwrap_err();
        let got = err.to_string();
        assert_eq!(got.lines().next(), Some(*line), "from:\n{cause}");
    }
}

#[test]
fn secrets_are_documented_as_the_parser_reads_them() {
    // The complete example's `[secrets]` parses to the sources it shows.
    let example = blocks(PAGE, "toml")
        .into_iter()
        .find(|b| b.contains("[secrets]"))
        .expect("an example with [secrets]");
    let m = Manifest::parse(&example, "example.toml").unwrap();
    let sources: Vec<(String, Value)> = m
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap()))
        .collect();
    assert_eq!(
        sources,
        [
            (
                "hook_token".to_owned(),
                serde_json::json!({"env": "ORDERS_HOOK_TOKEN"})
            ),
            (
                "signing_key".to_owned(),
                serde_json::json!({"file": "/run/secrets/orders-signing-key"})
            ),
        ]
    );
    // What the page says is refused is refused, naming the key.
    let base = "name = \"p\"\nversion = \"1\"\nworld = \"subscriber\"\n[secrets]\n";
    for (entry, says) in [
        ("t = { file = \"relative\" }", "absolute path"),
        ("t = { env = \"A\", file = \"/b\" }", "exactly one of"),
        ("t = { envv = \"A\" }", "unknown field `envv`"),
        ("\"bad name\" = { env = \"A\" }", "[A-Za-z0-9_-]+"),
    ] {
        let err = Manifest::parse(&format!("{base}{entry}\n"), "p.toml").unwrap_err();
        assert!(
            err.key.as_deref().unwrap_or("").starts_with("secrets")
                && err.to_string().contains(says),
            "{entry}: {err}"
        );
    }
}
