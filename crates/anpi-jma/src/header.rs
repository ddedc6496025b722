//! Lean streaming pass over the whole document with quick-xml: checks well-formedness and that the
//! root is a JMA `<Report>`, and collects the `Control` and `Head` texts. Independent of `jmaxml`,
//! so every well-formed JMA telegram gets a header even when its body cannot be modelled.

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use crate::error::ParseError;

/// Namespace of the `<Report>` root element.
pub(crate) const JMX_NS: &[u8] = b"http://xml.kishou.go.jp/jmaxml1/";

/// Deepest element nesting accepted. JMA schemas nest about a dozen levels; the limit keeps
/// hostile input from driving the recursive body deserialiser into a stack overflow.
pub(crate) const MAX_DEPTH: usize = 64;

/// Header fields we read, by element path below `<Report>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    ControlTitle,
    ControlDateTime,
    ControlStatus,
    EditorialOffice,
    PublishingOffice,
    HeadTitle,
    ReportDateTime,
    TargetDateTime,
    EventId,
    InfoType,
    Serial,
    InfoKind,
    HeadlineText,
}

const FIELD_COUNT: usize = 13;

/// Raw header texts (untrimmed); `None` when the element is absent. First occurrence wins.
#[derive(Debug, Default)]
pub(crate) struct RawHeader {
    values: [Option<String>; FIELD_COUNT],
}

impl RawHeader {
    pub(crate) fn get(&self, f: Field) -> Option<&str> {
        self.values.get(f as usize).and_then(|v| v.as_deref())
    }
}

fn field_for(path: &[Vec<u8>]) -> Option<Field> {
    let names: Vec<&[u8]> = path.iter().map(|p| p.as_slice()).collect();
    Some(match names.as_slice() {
        [_, b"Control", leaf] => match *leaf {
            b"Title" => Field::ControlTitle,
            b"DateTime" => Field::ControlDateTime,
            b"Status" => Field::ControlStatus,
            b"EditorialOffice" => Field::EditorialOffice,
            b"PublishingOffice" => Field::PublishingOffice,
            _ => return None,
        },
        [_, b"Head", leaf] => match *leaf {
            b"Title" => Field::HeadTitle,
            b"ReportDateTime" => Field::ReportDateTime,
            b"TargetDateTime" => Field::TargetDateTime,
            b"EventID" => Field::EventId,
            b"InfoType" => Field::InfoType,
            b"Serial" => Field::Serial,
            b"InfoKind" => Field::InfoKind,
            _ => return None,
        },
        [_, b"Head", b"Headline", b"Text"] => Field::HeadlineText,
        _ => return None,
    })
}

fn xml_error(position: u64, message: impl std::fmt::Display) -> ParseError {
    ParseError::Xml { position, message: message.to_string() }
}

/// Scans `xml` to the end. Errors on malformed XML, a non-JMA root, or content after the root.
pub(crate) fn scan(xml: &str) -> Result<RawHeader, ParseError> {
    let mut reader = NsReader::from_str(xml);
    let mut header = RawHeader::default();
    // Local names of the open elements, only the first four levels are kept.
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut depth: usize = 0;
    let mut root_done = false;
    // Field whose text is being collected, and the depth of its element.
    let mut collecting: Option<(Field, usize)> = None;

    loop {
        let event = reader.read_resolved_event();
        let (ns, event) = match event {
            Ok(v) => v,
            Err(e) => return Err(xml_error(reader.error_position(), e)),
        };
        let is_empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(e) | Event::Empty(e) => {
                if root_done {
                    return Err(xml_error(reader.buffer_position(), "content after the root element"));
                }
                let local = e.local_name().into_inner().to_vec();
                if depth == 0 {
                    let in_jmx = matches!(ns, ResolveResult::Bound(Namespace(n)) if n == JMX_NS);
                    if local != b"Report" || !in_jmx {
                        let name = String::from_utf8_lossy(e.name().into_inner()).into_owned();
                        return Err(ParseError::NotJma(format!("root element is <{name}>, expected <Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\">")));
                    }
                }
                if depth < 4 {
                    path.push(local);
                    if let Some(field) = field_for(&path) {
                        if let Some(slot) = header.values.get_mut(field as usize) {
                            if slot.is_none() {
                                *slot = Some(String::new());
                                collecting = (!is_empty).then_some((field, depth));
                            }
                        }
                    }
                    if is_empty {
                        path.pop();
                    }
                }
                if is_empty {
                    root_done |= depth == 0;
                } else {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(xml_error(reader.buffer_position(), format!("elements nested deeper than {MAX_DEPTH} levels")));
                    }
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth < 4 {
                    path.pop();
                }
                if matches!(collecting, Some((_, d)) if d == depth) {
                    collecting = None;
                }
                root_done |= depth == 0;
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| xml_error(reader.buffer_position(), e))?;
                if depth == 0 && !text.trim().is_empty() {
                    let msg = if root_done { "text after the root element" } else { "text before the root element" };
                    return Err(xml_error(reader.buffer_position(), msg));
                }
                append(&mut header, collecting, &text);
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| xml_error(reader.buffer_position(), e))?;
                append(&mut header, collecting, &text);
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => {
                        let name = r.decode().map_err(|e| xml_error(reader.buffer_position(), e))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_string(),
                            None => return Err(xml_error(reader.buffer_position(), format!("undefined entity &{name};"))),
                        }
                    }
                    Err(e) => return Err(xml_error(reader.buffer_position(), e)),
                };
                append(&mut header, collecting, &resolved);
            }
            Event::Eof => {
                if depth > 0 {
                    let open = path.last().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default();
                    return Err(xml_error(
                        reader.buffer_position(),
                        format!("unexpected end of document (truncated?): <{open}> and {depth} element(s) not closed"),
                    ));
                }
                if !root_done {
                    return Err(ParseError::NotJma("no root element".into()));
                }
                return Ok(header);
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

fn append(header: &mut RawHeader, collecting: Option<(Field, usize)>, text: &str) {
    if let Some((field, _)) = collecting {
        if let Some(Some(slot)) = header.values.get_mut(field as usize) {
            slot.push_str(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINI: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Report xmlns="http://xml.kishou.go.jp/jmaxml1/">
  <Control><Title>震度速報</Title><Status>通常</Status><PublishingOffice>気象庁</PublishingOffice></Control>
  <Head xmlns="http://xml.kishou.go.jp/jmaxml1/informationBasis1/">
    <Title>A &amp; B&#x41;</Title><Serial/><EventID><![CDATA[123]]></EventID>
    <Headline><Text>見出し</Text><Information><Item><Kind><Name>x</Name></Kind></Item></Information></Headline>
  </Head>
  <Body><Deep><Deeper><Title>not a header</Title></Deeper></Deep></Body>
</Report>
"#;

    #[test]
    fn collects_header_fields() {
        let h = scan(MINI).unwrap();
        assert_eq!(h.get(Field::ControlTitle), Some("震度速報"));
        assert_eq!(h.get(Field::HeadTitle), Some("A & BA"));
        assert_eq!(h.get(Field::Serial), Some(""));
        assert_eq!(h.get(Field::EventId), Some("123"));
        assert_eq!(h.get(Field::HeadlineText), Some("見出し"));
        assert_eq!(h.get(Field::InfoType), None);
    }

    #[test]
    fn rejects_bad_documents() {
        let truncated = &MINI[..MINI.len() / 2];
        assert!(matches!(scan(truncated), Err(ParseError::Xml { .. })), "{:?}", scan(truncated));
        assert!(matches!(scan("<html><body/></html>"), Err(ParseError::NotJma(_))));
        assert!(matches!(scan("<Report/>"), Err(ParseError::NotJma(_))));
        assert!(matches!(scan("plain text"), Err(ParseError::Xml { .. }) | Err(ParseError::NotJma(_))));
        let two_roots = format!("{MINI}<Report xmlns=\"http://xml.kishou.go.jp/jmaxml1/\"/>");
        assert!(matches!(scan(&two_roots), Err(ParseError::Xml { .. })));
        let mismatched = MINI.replace("</Control>", "</Kontrol>");
        assert!(matches!(scan(&mismatched), Err(ParseError::Xml { .. })));
        let entity = MINI.replace("&amp;", "&nbsp;");
        assert!(matches!(scan(&entity), Err(ParseError::Xml { .. })));
        let deep = MINI.replace("<Body>", &format!("<Body>{}{}", "<a>".repeat(100), "</a>".repeat(100)));
        let err = scan(&deep).unwrap_err().to_string();
        assert!(err.contains("nested deeper than 64"), "{err}");
    }
}
