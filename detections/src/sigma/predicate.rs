//! One Sigma detection item (`field|modifiers: values`) as a SQL predicate over `k8s_audit`,
//! with Sigma's meaning: strings match case-insensitively unless `|cased`, `*` and `?` are
//! wildcards, a list of values is any of them (all of them with `|all`), `|re` is a
//! case-sensitive regular expression unless `|i`.

use rsigma_parser::{Modifier, SigmaString, SigmaValue, SpecialChar, StringPart};

use super::fields::{AuditField, JsonKey};

/// How a value is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Equals,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Cidr,
    Exists,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

struct Modifiers {
    comparison: Comparison,
    all: bool,
    cased: bool,
    /// Inline flags of a `|re`: `i`, `m`, `s`.
    regex_flags: String,
}

fn modifiers(field: &str, list: &[Modifier]) -> Result<Modifiers, String> {
    let mut m = Modifiers {
        comparison: Comparison::Equals,
        all: false,
        cased: false,
        regex_flags: String::new(),
    };
    let set = |c: Comparison, m: &mut Modifiers| {
        if m.comparison != Comparison::Equals {
            return Err(format!("{field}: more than one comparison modifier"));
        }
        m.comparison = c;
        Ok(())
    };
    for modifier in list {
        match modifier {
            Modifier::Contains => set(Comparison::Contains, &mut m)?,
            Modifier::StartsWith => set(Comparison::StartsWith, &mut m)?,
            Modifier::EndsWith => set(Comparison::EndsWith, &mut m)?,
            Modifier::Re => set(Comparison::Regex, &mut m)?,
            Modifier::Cidr => set(Comparison::Cidr, &mut m)?,
            Modifier::Exists => set(Comparison::Exists, &mut m)?,
            Modifier::Gt => set(Comparison::Greater, &mut m)?,
            Modifier::Gte => set(Comparison::GreaterOrEqual, &mut m)?,
            Modifier::Lt => set(Comparison::Less, &mut m)?,
            Modifier::Lte => set(Comparison::LessOrEqual, &mut m)?,
            Modifier::All => m.all = true,
            Modifier::Cased => m.cased = true,
            Modifier::IgnoreCase => m.regex_flags.push('i'),
            Modifier::Multiline => m.regex_flags.push('m'),
            Modifier::DotAll => m.regex_flags.push('s'),
            other => {
                let name = serde_json::to_value(other)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("{other:?}"));
                return Err(format!("{field}: the modifier |{name} is not supported"));
            }
        }
    }
    if !m.regex_flags.is_empty() && m.comparison != Comparison::Regex {
        return Err(format!("{field}: regular-expression flags without |re"));
    }
    Ok(m)
}

/// `field|modifiers: values` as one predicate, or why it cannot be one.
pub(super) fn item(
    field_name: &str,
    field: &AuditField,
    modifier_list: &[Modifier],
    values: &[SigmaValue],
) -> Result<String, String> {
    let m = modifiers(field_name, modifier_list)?;
    if values.is_empty() {
        return Err(format!("{field_name}: no values"));
    }
    let parts = values
        .iter()
        .map(|v| value(field_name, field, &m, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match parts.len() {
        1 => parts.into_iter().next().unwrap_or_default(),
        _ => format!("({})", parts.join(if m.all { " AND " } else { " OR " })),
    })
}

fn value(name: &str, field: &AuditField, m: &Modifiers, v: &SigmaValue) -> Result<String, String> {
    use Comparison::*;
    if m.comparison == Exists {
        let SigmaValue::Bool(want) = v else {
            return Err(format!("{name}|exists takes true or false"));
        };
        let present = exists(field);
        return Ok(if *want {
            present
        } else {
            format!("NOT {present}")
        });
    }
    if let AuditField::Flag { list, element } = field {
        // Only "there is one": the values themselves are not in the lake's columns.
        return match (m.comparison, v) {
            (Equals, SigmaValue::String(s)) if is_any(s) => {
                Ok(format!("array_has({list}, {})", literal(element)))
            }
            _ => Err(format!(
                "{name}: only '*' (any) can be asked of it; the values are not kept"
            )),
        };
    }
    if matches!(v, SigmaValue::Null) {
        return Ok(match field {
            AuditField::List(c) => format!("coalesce(cardinality({c}), 0) = 0"),
            _ => format!("{} IS NULL", text(field)),
        });
    }
    match m.comparison {
        Greater | GreaterOrEqual | Less | LessOrEqual => numeric(name, field, m.comparison, v),
        Cidr => {
            let cidr = string(name, v)?;
            check_cidr(&cidr).map_err(|e| format!("{name}|cidr: {e}"))?;
            match field {
                AuditField::Text(_) | AuditField::Json { .. } => Ok(format!(
                    "cidr_contains({}, {})",
                    literal(&cidr),
                    text(field)
                )),
                _ => Err(format!(
                    "{name}: |cidr needs a field that holds one address"
                )),
            }
        }
        Regex => {
            let pattern = string(name, v)?;
            let pattern = if m.regex_flags.is_empty() {
                pattern
            } else {
                format!("(?{}){pattern}", m.regex_flags)
            };
            regex_automata::meta::Regex::new(&pattern)
                .map_err(|e| format!("{name}|re: {}", first_line(&e.to_string())))?;
            match field {
                AuditField::List(_) | AuditField::Derived { .. } => {
                    Err(format!("{name}: |re over a list field is not supported"))
                }
                _ => Ok(format!(
                    "regexp_like({}, {})",
                    text(field),
                    literal(&pattern)
                )),
            }
        }
        Equals | Contains | StartsWith | EndsWith => {
            if let (AuditField::Integer(column), Equals) = (field, m.comparison) {
                return match v {
                    SigmaValue::Integer(i) => Ok(format!("{column} = {i}")),
                    SigmaValue::String(s) if is_any(s) => Ok(format!("{column} IS NOT NULL")),
                    SigmaValue::String(s) => match s.as_plain().map(|p| p.parse::<i64>()) {
                        Some(Ok(i)) => Ok(format!("{column} = {i}")),
                        _ => Err(format!("{name} holds numbers; '{}' is not one", s.original)),
                    },
                    other => Err(format!("{name} holds numbers; '{other}' is not one")),
                };
            }
            let s = match v {
                SigmaValue::String(s) => s.clone(),
                other => SigmaString::from_raw(&other.to_string()),
            };
            Ok(string_match(field, m.comparison, m.cased, &s))
        }
        Exists => unreachable!("answered above"),
    }
}

/// A string comparison: SQL's own string functions where the value is plain, a regular
/// expression where it holds wildcards or the field is a list.
fn string_match(
    field: &AuditField,
    comparison: Comparison,
    cased: bool,
    s: &SigmaString,
) -> String {
    let list = match field {
        AuditField::List(c) => Some((c.to_string(), String::new())),
        AuditField::Derived { list, prefix } => Some((list.to_string(), regex_escape(prefix))),
        _ => None,
    };
    let body = wildcard_regex(s);
    let (lead, tail) = match comparison {
        Comparison::Contains => (".*", ".*"),
        Comparison::StartsWith => ("", ".*"),
        Comparison::EndsWith => (".*", ""),
        _ => ("", ""),
    };
    let flags = if cased { "" } else { "i" };
    if let Some((list, prefix)) = list {
        // One element a line: `(?m)` anchors each.
        return format!(
            "regexp_like(array_to_string({list}, chr(10)), {})",
            literal(&format!("(?m{flags})^{prefix}{lead}{body}{tail}$"))
        );
    }
    let column = text(field);
    match s.as_plain() {
        Some(plain) => {
            let (column, plain) = if cased {
                (column, plain)
            } else {
                (format!("lower({column})"), plain.to_lowercase())
            };
            let plain = literal(&plain);
            match comparison {
                Comparison::Contains => format!("strpos({column}, {plain}) > 0"),
                Comparison::StartsWith => format!("starts_with({column}, {plain})"),
                Comparison::EndsWith => format!("ends_with({column}, {plain})"),
                _ => format!("{column} = {plain}"),
            }
        }
        None if is_any(s) && comparison == Comparison::Equals => format!("{column} IS NOT NULL"),
        None => {
            let flags = if cased { String::new() } else { "(?i)".into() };
            format!(
                "regexp_like({column}, {})",
                literal(&format!("{flags}^{lead}{body}{tail}$"))
            )
        }
    }
}

fn numeric(
    name: &str,
    field: &AuditField,
    c: Comparison,
    v: &SigmaValue,
) -> Result<String, String> {
    let n = match v {
        SigmaValue::Integer(i) => i.to_string(),
        SigmaValue::Float(f) => f.to_string(),
        SigmaValue::String(s) => match s.as_plain().map(|p| p.parse::<f64>()) {
            Some(Ok(_)) => s.original.clone(),
            _ => return Err(format!("{name}: '{}' is not a number", s.original)),
        },
        other => return Err(format!("{name}: '{other}' is not a number")),
    };
    let op = match c {
        Comparison::Greater => ">",
        Comparison::GreaterOrEqual => ">=",
        Comparison::Less => "<",
        _ => "<=",
    };
    let operand = match field {
        AuditField::Integer(c) => c.to_string(),
        AuditField::Json { column, path } => format!("json_get_float({column}, {})", keys(path)),
        AuditField::Text(c) => format!("try_cast({c} AS DOUBLE)"),
        _ => return Err(format!("{name}: a list cannot be compared with a number")),
    };
    Ok(format!("{operand} {op} {n}"))
}

/// The field as text (a list field has no single text).
fn text(field: &AuditField) -> String {
    match field {
        AuditField::Text(c) => c.to_string(),
        AuditField::Integer(c) => format!("CAST({c} AS VARCHAR)"),
        AuditField::Json { column, path } => format!("json_as_text({column}, {})", keys(path)),
        AuditField::List(c) => format!("array_to_string({c}, chr(10))"),
        AuditField::Derived { list, .. } | AuditField::Flag { list, .. } => {
            format!("array_to_string({list}, chr(10))")
        }
    }
}

fn exists(field: &AuditField) -> String {
    match field {
        AuditField::Text(c) | AuditField::Integer(c) => format!("{c} IS NOT NULL"),
        AuditField::Json { column, path } => format!("json_contains({column}, {})", keys(path)),
        AuditField::List(c) => format!("coalesce(cardinality({c}), 0) > 0"),
        AuditField::Derived { list, prefix } => format!(
            "regexp_like(array_to_string({list}, chr(10)), {})",
            literal(&format!("(?m)^{}", regex_escape(prefix)))
        ),
        AuditField::Flag { list, element } => format!("array_has({list}, {})", literal(element)),
    }
}

fn keys(path: &[JsonKey]) -> String {
    path.iter()
        .map(|k| match k {
            JsonKey::Name(n) => literal(n),
            JsonKey::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn string(name: &str, v: &SigmaValue) -> Result<String, String> {
    match v {
        SigmaValue::String(s) => Ok(s.original.clone()),
        other => Err(format!("{name}: '{other}' is not text")),
    }
}

/// A lone `*`: any value at all.
fn is_any(s: &SigmaString) -> bool {
    matches!(
        s.parts.as_slice(),
        [StringPart::Special(SpecialChar::WildcardMulti)]
    )
}

/// A Sigma string as the body of a regular expression: `*` any run, `?` any one character.
fn wildcard_regex(s: &SigmaString) -> String {
    s.parts
        .iter()
        .map(|p| match p {
            StringPart::Plain(t) => regex_escape(t),
            StringPart::Special(SpecialChar::WildcardMulti) => ".*".into(),
            StringPart::Special(SpecialChar::WildcardSingle) => ".".into(),
        })
        .collect()
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A SQL string literal.
pub(super) fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn check_cidr(s: &str) -> Result<(), String> {
    let (address, bits) = s.split_once('/').unwrap_or((s, ""));
    let address: std::net::IpAddr = address
        .parse()
        .map_err(|_| format!("'{s}' is not a CIDR range"))?;
    let most = if address.is_ipv4() { 32 } else { 128 };
    if !bits.is_empty() && bits.parse::<u8>().map_or(true, |b| b > most) {
        return Err(format!("'{s}' is not a CIDR range"));
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> SigmaValue {
        SigmaValue::String(SigmaString::new(v))
    }

    #[test]
    fn plain_values_use_string_functions_and_wildcards_regexes() {
        let verb = AuditField::Text("verb");
        assert_eq!(
            item("verb", &verb, &[], &[s("Create")]).unwrap(),
            "lower(verb) = 'create'"
        );
        assert_eq!(
            item(
                "verb",
                &verb,
                &[Modifier::Contains, Modifier::All],
                &[s("a"), s("b")]
            )
            .unwrap(),
            "(strpos(lower(verb), 'a') > 0 AND strpos(lower(verb), 'b') > 0)"
        );
        assert_eq!(
            item("verb", &verb, &[Modifier::Cased], &[s("it's")]).unwrap(),
            "verb = 'it''s'"
        );
        assert_eq!(
            item("verb", &verb, &[Modifier::EndsWith], &[s("a*.b")]).unwrap(),
            "regexp_like(verb, '(?i)^.*a.*\\.b$')"
        );
        assert_eq!(
            item("verb", &verb, &[], &[s("*")]).unwrap(),
            "verb IS NOT NULL"
        );
    }

    #[test]
    fn what_cannot_be_translated_says_why() {
        let code = AuditField::Integer("response_code");
        assert!(item("responseStatus.code", &code, &[], &[s("ALLOW")])
            .unwrap_err()
            .contains("'ALLOW' is not one"));
        let verb = AuditField::Text("verb");
        assert!(item("verb", &verb, &[Modifier::Base64], &[s("x")])
            .unwrap_err()
            .contains("|base64 is not supported"));
        assert!(item("verb", &verb, &[Modifier::Re], &[s("(")])
            .unwrap_err()
            .starts_with("verb|re:"));
        assert!(item("verb", &verb, &[Modifier::Cidr], &[s("10.0.0.0/33")]).is_err());
        assert!(item(
            "verb",
            &verb,
            &[Modifier::Contains, Modifier::Re],
            &[s("x")]
        )
        .is_err());
        let host_path = AuditField::Flag {
            list: "pod_risks(request_object)",
            element: "hostPath",
        };
        assert!(item("hostPath", &host_path, &[], &[s("/etc")]).is_err());
    }
}
