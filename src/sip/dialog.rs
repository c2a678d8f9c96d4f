//! Dialogs, RFC 3261 §12: the state two user agents share for one call — Call-ID, tags,
//! CSeq spaces, remote target and route set — and how in-dialog requests are built from it.
//! PURE.

use super::msg::{HeaderViews, Headers, Method, NameAddr, Request, Response, Uri};

/// Identifies a dialog from our side: Call-ID and our own tag (§12: local tag, remote tag).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub call_id: String,
    pub local_tag: String,
}

/// Which side of the INVITE we were (§12.1.1 UAS, §12.1.2 UAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Uas,
    Uac,
}

/// One dialog. Early until the final 2xx, confirmed after (§12.1); the user agent tracks that.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub role: Role,
    pub call_id: String,
    pub local_tag: String,
    /// Empty until the peer's tag is known (UAC before the first tagged response).
    pub remote_tag: String,
    /// Our URI (From of our requests), remote URI (To of our requests).
    pub local_uri: NameAddr,
    pub remote_uri: NameAddr,
    /// Where in-dialog requests go: the peer's Contact (§12.1.1).
    pub remote_target: Option<Uri>,
    /// Record-Route, in the order our requests must carry it as Route.
    pub route_set: Vec<NameAddr>,
    /// Our last CSeq number; the next request uses `local_cseq + 1`.
    pub local_cseq: u32,
    /// The peer's highest CSeq seen; lower in-dialog requests get 500 (§12.2.2).
    pub remote_cseq: Option<u32>,
}

impl Dialog {
    pub fn key(&self) -> DialogKey {
        DialogKey {
            call_id: self.call_id.clone(),
            local_tag: self.local_tag.clone(),
        }
    }

    /// The dialog a UAS creates when it answers (or rings for) an INVITE, §12.1.1.
    /// Returns `None` when the INVITE lacks a From, To or Call-ID that parse.
    pub fn new_uas(invite: &Request, local_tag: String) -> Option<Self> {
        let from = invite.from_hdr()?;
        let mut to = invite.to_hdr()?;
        to.params.set("tag", Some(local_tag.clone()));
        Some(Self {
            role: Role::Uas,
            call_id: invite.call_id()?.to_owned(),
            remote_tag: from.tag().unwrap_or_default().to_owned(),
            local_tag,
            local_uri: to,
            remote_uri: from,
            remote_target: invite.contact().map(|c| c.uri),
            // §12.1.1: the route set is the Record-Route list, in order.
            route_set: invite.routes("Record-Route"),
            local_cseq: 0,
            remote_cseq: invite.cseq().map(|c| c.seq),
        })
    }

    /// A UAC dialog from our INVITE, before any response (§12.1.2 completes it on the first
    /// tagged response with [`Self::update_from_response`]).
    pub fn new_uac(call_id: String, local: NameAddr, remote: NameAddr, cseq: u32) -> Self {
        let local_tag = local.tag().unwrap_or_default().to_owned();
        let remote_target = Some(remote.uri.clone());
        Self {
            role: Role::Uac,
            call_id,
            local_tag,
            remote_tag: String::new(),
            local_uri: local,
            remote_uri: remote,
            remote_target,
            route_set: Vec::new(),
            local_cseq: cseq,
            remote_cseq: None,
        }
    }

    /// Learn the remote tag, target and route set from a response to our INVITE (§12.1.2:
    /// Record-Route reversed). Later 2xx may refresh the target (§12.2.1.2).
    pub fn update_from_response(&mut self, rsp: &Response) {
        if let Some(tag) = rsp.to_hdr().as_ref().and_then(|t| t.tag()) {
            self.remote_tag = tag.to_owned();
            self.remote_uri.params.set("tag", Some(tag.to_owned()));
        }
        if let Some(c) = rsp.contact() {
            self.remote_target = Some(c.uri);
        }
        let rr = rsp.routes("Record-Route");
        if !rr.is_empty() {
            self.route_set = rr.into_iter().rev().collect();
        }
    }

    /// Check and record the CSeq of an in-dialog request from the peer (§12.2.2). `false` means
    /// it is out of order and must get a 500.
    pub fn accept_remote_cseq(&mut self, req: &Request) -> bool {
        let Some(cseq) = req.cseq() else { return false };
        if req.method == Method::Ack || req.method == Method::Cancel {
            return true;
        }
        match self.remote_cseq {
            Some(prev) if cseq.seq <= prev => false,
            _ => {
                self.remote_cseq = Some(cseq.seq);
                true
            }
        }
    }

    /// A new in-dialog request (BYE, re-INVITE, REFER, INFO…), §12.2.1.1. `via` is the Via value
    /// with a fresh branch; `contact` our Contact for target-refreshing requests.
    pub fn request(&mut self, method: Method, via: String, contact: Option<&str>) -> Request {
        self.local_cseq += 1;
        self.request_with_cseq(method, self.local_cseq, via, contact)
    }

    /// The ACK for a 2xx (§13.2.2.4): its own transaction, CSeq number of the INVITE.
    pub fn ack(&self, invite_cseq: u32, via: String) -> Request {
        self.request_with_cseq(Method::Ack, invite_cseq, via, None)
    }

    fn request_with_cseq(
        &self,
        method: Method,
        seq: u32,
        via: String,
        contact: Option<&str>,
    ) -> Request {
        let mut headers = Headers::default();
        headers.push("Via", via);
        headers.push("Max-Forwards", "70");
        headers.push("From", self.local_uri.to_string());
        headers.push("To", self.remote_uri.to_string());
        headers.push("Call-ID", self.call_id.clone());
        headers.push("CSeq", format!("{seq} {method}"));
        // §12.2.1.1: loose routing — Request-URI is the remote target, Route carries the set.
        for r in &self.route_set {
            headers.push("Route", r.to_string());
        }
        if let Some(c) = contact {
            headers.push("Contact", c.to_owned());
        }
        let uri = self
            .remote_target
            .clone()
            .unwrap_or_else(|| self.remote_uri.uri.clone());
        Request {
            method,
            uri,
            headers,
            body: Vec::new(),
        }
    }
}
