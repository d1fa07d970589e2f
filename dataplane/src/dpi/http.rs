//! HTTP/1.x: request line and Host / User-Agent; response status and
//! Content-Type.

use super::extract::find;

const METHODS: [&[u8]; 16] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"PROPFIND ",
    b"PROPPATCH ",
    b"MKCOL ",
    b"COPY ",
    b"MOVE ",
    b"LOCK ",
    b"UNLOCK ",
    b"SEARCH ",
];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a [u8],
    pub host: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Response<'a> {
    pub status: u16,
    pub content_type: Option<&'a [u8]>,
    /// The body is a file download (a binary content type or an
    /// attachment).
    pub download: bool,
}

/// A request: a known method, a request line ending in `HTTP/1.x`.
pub fn request(p: &[u8]) -> Option<Request<'_>> {
    let method = METHODS.iter().find(|m| p.starts_with(m))?;
    let line_end = find(&p[..p.len().min(4096)], b"\r\n")?;
    let line = &p[..line_end];
    if !(line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0")) {
        return None;
    }
    let mut r = Request { method: &method[..method.len() - 1], ..Request::default() };
    for (name, value) in headers(&p[line_end + 2..]) {
        if name.eq_ignore_ascii_case(b"host") {
            // Without the port.
            let v = match value.iter().rposition(|&c| c == b':') {
                Some(i) if !value.starts_with(b"[") && value[i + 1..].iter().all(u8::is_ascii_digit) => &value[..i],
                _ => value,
            };
            r.host = Some(v);
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            r.user_agent = Some(value);
        }
    }
    Some(r)
}

/// A response: `HTTP/1.x NNN`.
pub fn response(p: &[u8]) -> Option<Response<'_>> {
    if !(p.starts_with(b"HTTP/1.1 ") || p.starts_with(b"HTTP/1.0 ")) || p.len() < 12 {
        return None;
    }
    let code = std::str::from_utf8(&p[9..12]).ok()?.parse().ok()?;
    let line_end = find(&p[..p.len().min(4096)], b"\r\n")?;
    let mut r = Response { status: code, ..Response::default() };
    for (name, value) in headers(&p[line_end + 2..]) {
        if name.eq_ignore_ascii_case(b"content-type") {
            r.content_type = Some(value);
            r.download |= DOWNLOADS.iter().any(|t| starts_ci(value, t));
        } else if name.eq_ignore_ascii_case(b"content-disposition") && starts_ci(value, b"attachment") {
            r.download = true;
        }
    }
    Some(r)
}

/// Content types of files fetched whole: archives, packages, disk images,
/// executables and opaque bytes (not media segments or playlists, which
/// are streaming).
const DOWNLOADS: [&[u8]; 16] = [
    b"application/octet-stream",
    b"application/zip",
    b"application/gzip",
    b"application/x-gzip",
    b"application/x-tar",
    b"application/x-bzip2",
    b"application/x-xz",
    b"application/x-7z-compressed",
    b"application/x-rar-compressed",
    b"application/vnd.rar",
    b"application/x-msdownload",
    b"application/vnd.microsoft.portable-executable",
    b"application/x-debian-package",
    b"application/x-rpm",
    b"application/x-iso9660-image",
    b"application/vnd.android.package-archive",
];

/// Header lines up to the blank line (or the end of the payload).
fn headers(mut p: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    std::iter::from_fn(move || loop {
        let end = find(p, b"\r\n").unwrap_or(p.len());
        if end == 0 {
            return None;
        }
        let line = &p[..end];
        p = p.get(end + 2..).unwrap_or(&[]);
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            let v = &line[colon + 1..];
            let start = v.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(v.len());
            return Some((&line[..colon], v[start..].trim_ascii_end()));
        }
    })
}

fn starts_ci(v: &[u8], prefix: &[u8]) -> bool {
    v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
}
