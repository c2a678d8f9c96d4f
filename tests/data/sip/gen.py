#!/usr/bin/env python3
"""Writes the RFC 4475 and RFC 5118 test messages as byte-exact .sip files (CRLF line ends).

The messages are transcribed from the RFCs' §3 / §4 text: `<allOneLine>` lines joined, `<hex>`
spans decoded, `<repeat>` expanded. Two bodies cannot be transcribed from the text and are
stand-ins with the same structure: the S/MIME part of mpart01 (binary DER, here other binary
bytes) and the Cyrillic reason phrase of unreason (UTF-8, here a UTF-8 phrase of the same kind).
Content-Length of those two is set to the actual body length. Run from this directory.
"""
import os

SDP = lambda ip: (
    "v=0\no=mhandley 29739 7272939 IN IP4 %s\ns=-\nc=IN IP4 %s\nt=0 0\n"
    "m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n" % (ip, ip)
)

def crlf(s):
    return s.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

def msg(head, body=""):
    """head: header block without the blank line; body: text body (LF, turned to CRLF)."""
    return crlf(head.rstrip("\n") + "\n\n") + crlf(body)

def rep(n, s):
    return s * n

M = {}  # (dir, name) -> bytes

# ---------------------------------------------------------------- RFC 4475 §3.1.1 valid
M["rfc4475/valid", "wsinv"] = msg(r'''INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
Content-Length   : 150
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33
''', "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.4\nt=0 0\n"
     "m=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n")

M["rfc4475/valid", "intmeth"] = msg('''!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~
To: "BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>
From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%="\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439";tag=_token~1'+`*%!-.
Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/"][?}{
CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~
Max-Forwards: 255
extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb
Content-Length: 0
''')

M["rfc4475/valid", "esc01"] = msg('''INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
Content-Length: 150
''', SDP("192.0.2.1"))

M["rfc4475/valid", "escnull"] = msg('''REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0
''')

M["rfc4475/valid", "esc02"] = msg('''RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234
CSeq: 29344 RE%47IST%45R
Max-Forwards: 70
Contact: <sip:alias1@host1.example.com>
C%6Fntact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
l: 0
''')

M["rfc4475/valid", "lwsdisp"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0
''')

acn = rep(5, "amazinglylongcallername")
vias = "".join("%s: SIP/2.0/TCP sip%d.example.com\n" % (n, 33 - i) for i, n in enumerate(
    ["Via", "v", "V", "Via", "ViA", "VIa", "VIA", "via", "viA", "vIa", "vIA", "V ", "v ", "V  ",
     "v  ", "Via ", "Via  "] + ["Via"] * 16))
M["rfc4475/valid", "longreq"] = msg('INVITE sip:user@example.com SIP/2.0\n'
    'To: "I have a user name of ' + rep(10, "extreme") + ' proportion"<sip:user@example.com:6000;unknownparam1=very'
    + rep(20, "long") + 'value;longparam' + rep(25, "name") + '=shortvalue;very' + rep(25, "long")
    + 'ParameterNameWithNoValue>\n'
    'F: sip:' + acn + '@example.net;tag=12' + rep(50, "982") + '424;unknownheaderparam' + rep(20, "name")
    + '=unknowheaderparam' + rep(15, "value") + ';unknownValueless' + rep(10, "paramname") + '\n'
    'Call-ID: longreq.one' + rep(20, "really") + 'longcallid\n'
    'CSeq: 3882340 INVITE\n'
    'Unknown-' + rep(20, "Long") + '-Name: unknown-' + rep(20, "long") + '-value; unknown-' + rep(20, "long")
    + '-parameter-name = unknown-' + rep(20, "long") + '-parameter-value\n'
    + vias.replace("sip33.example.com\n", "sip33.example.com\n", 1)
    + 'Via: SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=very' + rep(50, "long") + 'branchvalue\n'
    'Max-Forwards: 70\n'
    'Contact: <sip:' + acn + '@host5.example.net>\n'
    'Content-Type: application/sdp\n'
    'l: 150\n', SDP("192.0.2.1"))

M["rfc4475/valid", "dblreq"] = msg('''REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0
''') + msg('''INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.15").replace("m=video", "m =video"))

M["rfc4475/valid", "semiuri"] = msg('''OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0
''')

M["rfc4475/valid", "transports"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0
''')

# Binary S/MIME stand-in: DER-like bytes including NUL, CR, LF and high octets.
der = bytes([0x30, 0x82, 0x01, 0x52, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02, 0xA0,
             0x82, 0x01, 0x43, 0x30, 0x82, 0x01, 0x3F, 0x02, 0x01, 0x01, 0x31, 0x09, 0x30, 0x07, 0x06, 0x05,
             0x2B, 0x0E, 0x03, 0x02, 0x1A, 0x30, 0x0B, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01,
             0x07, 0x01, 0x31, 0x82, 0x01, 0x20, 0x30, 0x82, 0x01, 0x1C, 0x02, 0x01, 0x01, 0x30, 0x7C, 0x30,
             0x70, 0x31, 0x0B, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x0D, 0x0A,
             0x00, 0x00, 0xFF, 0xFE, 0x0D, 0x0A, 0x0D, 0x0A, 0x80, 0x81, 0xC0, 0xC1])
mp_body = (crlf("--7a9cbec02ceef655\nContent-Type: text/plain\nContent-Transfer-Encoding: binary\n\nHello\n"
                "--7a9cbec02ceef655\nContent-Type: application/octet-stream\n"
                "Content-Transfer-Encoding: binary\n\n") + der + crlf("\n--7a9cbec02ceef655--\n"))
M["rfc4475/valid", "mpart01"] = crlf('''MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Identity: r5mwreLuyDRYBi/0TiPwEsY3rEVsk/G2WxhgTV1PF7hHuLIK0YWVKZhKv9Mj8UeXqkMVbnVq37CD+813gvYjcBUaZngQmXc9WNZSDNGCzA+fWl9MEUHWIZo1CeJebdY/XlgKeTa0Olvq0rt70Q5jiSfbqMJmQFteeivUhkMWYUA=
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary=7a9cbec02ceef655
Date: Sat, 15 Oct 2005 04:44:56 GMT
User-Agent: SIPimp.org/0.2.5 (curses)
Content-Length: %d

''' % len(mp_body)) + mp_body

M["rfc4475/valid", "unreason"] = msg('''SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>
''', SDP("192.0.2.198"))

M["rfc4475/valid", "noreason"] = msg('''SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>
''')

# ------------------------------------------------------------- RFC 4475 §3.1.2 invalid
M["rfc4475/invalid", "badinv01"] = msg('''INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
Content-Length: 152
Content-Type: application/sdp
''', SDP("192.0.2.15"))

M["rfc4475/invalid", "clerr"] = msg('''INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
Content-Length: 9999
''', SDP("192.0.2.155"))

M["rfc4475/invalid", "ncl"] = msg('''INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
Content-Length: -999
''', SDP("192.0.2.53"))

M["rfc4475/invalid", "scalar02"] = msg('''REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1''' + rep(100, "0") + '''
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0
''')

M["rfc4475/invalid", "scalarlg"] = msg('''SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture "In Progress"
Content-Length: 0
''')

M["rfc4475/invalid", "quotbal"] = msg('''INVITE sip:user@example.com SIP/2.0
To: "Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
Content-Length: 152
''', SDP("192.0.2.15"))

M["rfc4475/invalid", "ltgtruri"] = msg('''INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.5"))

M["rfc4475/invalid", "lwsruri"] = msg('''INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.1"))

M["rfc4475/invalid", "lwsstart"] = msg('''INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.1"))

M["rfc4475/invalid", "trws"] = msg('''OPTIONS sip:remote-target@example.com SIP/2.0  
Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0
''')

M["rfc4475/invalid", "escruri"] = msg('''INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=341518
Max-Forwards: 7
Contact: <sip:caller@host39923.example.net>
Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5
CSeq: 149209342 INVITE
Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.1"))

M["rfc4475/invalid", "baddate"] = msg('''INVITE sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=2234923
Max-Forwards: 70
Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234
CSeq: 1392934 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Date: Fri, 01 Jan 2010 16:00:00 EST
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
Content-Length: 150
''', SDP("192.0.2.5"))

M["rfc4475/invalid", "regbadct"] = msg('''REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=998332
Max-Forwards: 70
Call-ID: regbadct.k345asrl3fdbv@10.0.0.1
CSeq: 1 REGISTER
Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw
Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E
l: 0
''')

M["rfc4475/invalid", "badaspec"] = msg('''OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423
To: "Watson, Thomas" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0
''')

M["rfc4475/invalid", "baddn"] = msg('''OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0
''')

M["rfc4475/invalid", "badvers"] = msg('''OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0
''')

M["rfc4475/invalid", "mismatch01"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0
''')

M["rfc4475/invalid", "mismatch02"] = msg('''NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
l: 150
''', SDP("192.0.2.1"))

M["rfc4475/invalid", "bigcode"] = msg('''SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3ehjasdfas9i
CSeq: 353494 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>
''')

# ------------------------------------------------- RFC 4475 §3.2 transaction layer (valid)
M["rfc4475/valid", "badbranch"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK
Accept: application/sdp
Call-ID: badbranch.sadonfo23i420jv0as0derf3j3n
CSeq: 8 OPTIONS
l: 0
''')

# --------------------------------------------------- RFC 4475 §3.3 application layer
M["rfc4475/invalid", "insuf"] = msg('''INVITE sip:user@example.com SIP/2.0
CSeq: 193942 INVITE
Via: SIP/2.0/UDP 192.0.2.95;branch=z9hG4bKkdj.insuf
Content-Type: application/sdp
l: 150
''', SDP("192.0.2.1"))

M["rfc4475/invalid", "unkscm"] = msg('''OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: unkscm.nasdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0
''')

M["rfc4475/valid", "novelsc"] = msg('''OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=384
Max-Forwards: 3
Call-ID: novelsc.asdfasser0q239nwsdfasdkl34
CSeq: 3923423 OPTIONS
Via: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234
Content-Length: 0
''')

M["rfc4475/valid", "unksm2"] = msg('''REGISTER sip:example.com SIP/2.0
To: isbn:2983792873
From: <http://www.example.com>;tag=3234233
Call-ID: unksm2.daksdj@hyphenated-host.example.com
CSeq: 234902 REGISTER
Max-Forwards: 70
Via: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw
Contact: <name:John_Smith>
l: 0
''')

M["rfc4475/invalid", "bext01"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.net;tag=242etr
Max-Forwards: 6
Call-ID: bext01.0ha0isndaksdj
Require: nothingSupportsThis, nothingSupportsThisEither
Proxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis
CSeq: 8 OPTIONS
Via: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw
Content-Length: 0
''')

M["rfc4475/invalid", "invut"] = msg('''INVITE sip:user@example.com SIP/2.0
Contact: <sip:caller@host5.example.net>
To: sip:j.user@example.com
From: sip:caller@example.net;tag=8392034
Max-Forwards: 70
Call-ID: invut.0ha0isndaksdjadsfij34n23d
CSeq: 235448 INVITE
Via: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw
Content-Type: application/unknownformat
Content-Length: 40
''', '<audio>\n <pcmu port="443"/>\n</audio>\n')

M["rfc4475/invalid", "regaut01"] = msg('''REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=87321hj23128
Max-Forwards: 8
Call-ID: regaut01.0ha0isndaksdj
CSeq: 9338 REGISTER
Via: SIP/2.0/TCP 192.0.2.253;branch=z9hG4bKkdjuw
Authorization: NoOneKnowsThisScheme opaque-data=here
Content-Length:0
''')

M["rfc4475/invalid", "multi01"] = msg('''INVITE sip:user@company.com SIP/2.0
Contact: <sip:caller@host25.example.net>
Via: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw
Max-Forwards: 70
CSeq: 5 INVITE
Call-ID: multi01.98asdh@192.0.2.1
CSeq: 59 INVITE
Call-ID: multi01.98asdh@192.0.2.2
From: sip:caller@example.com;tag=3413415
To: sip:user@example.com
To: sip:other@example.net
From: sip:caller@example.net;tag=2923420123
Content-Type: application/sdp
l: 152
Contact: <sip:caller@host36.example.net>
Max-Forwards: 5
''', SDP("192.0.2.25"))

M["rfc4475/invalid", "mcl01"] = msg('''OPTIONS sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK293423
To: sip:user@example.com
From: sip:other@example.net;tag=3923942
Call-ID: mcl01.fhn2323orihawfdoa3o4r52o3irsdf
CSeq: 15932 OPTIONS
Content-Length: 13
Max-Forwards: 60
Content-Length: 5
Content-Type: text/plain
''', "There's no way to know how many octets are supposed to be here.\n")

M["rfc4475/valid", "bcast"] = msg('''SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23
Call-ID: bcast.0384840201234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
Content-Length: 154
Content-Type: application/sdp
Contact: <sip:user@host28.example.com>
''', SDP("192.0.2.198"))

M["rfc4475/valid", "zeromf"] = msg('''OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=3ghsd41
Call-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas
CSeq: 39234321 OPTIONS
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i
Max-Forwards: 0
Content-Length: 0
''')

M["rfc4475/valid", "cparam01"] = msg('''REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=DkfVgjkrtMwaerKKpe
To: sip:watson@example.com
Call-ID: cparam01.70710@saturn.example.com
CSeq: 2 REGISTER
Contact: sip:+19725552222@gw1.example.net;unknownparam
l: 0
''')

M["rfc4475/valid", "cparam02"] = msg('''REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/UDP saturn.example.com:5060;branch=z9hG4bKkdjuw
Max-Forwards: 70
From: sip:watson@example.com;tag=838293
To: sip:watson@example.com
Call-ID: cparam02.70710@saturn.example.com
CSeq: 3 REGISTER
Contact: <sip:+19725552222@gw1.example.net;unknownparam>
l: 0
''')

M["rfc4475/valid", "regescrt"] = msg('''REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=8
Max-Forwards: 70
Call-ID: regescrt.k345asrl3fdbv@192.0.2.1
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
M: <sip:user@example.com?Route=%3Csip:sip.example.com%3E>
L:0
''')

M["rfc4475/invalid", "sdp01"] = msg('''INVITE sip:user@example.com SIP/2.0
To: sip:j_user@example.com
Contact: <sip:caller@host15.example.net>
From: sip:caller@example.net;tag=234
Max-Forwards: 5
Call-ID: sdp01.ndaksdj9342dasdd
Accept: text/nobodyknowsthis
CSeq: 8 INVITE
Via: SIP/2.0/UDP 60.250.248.40;branch=z9hG4bKkdjuw
Content-Length: 150
Content-Type: application/sdp
''', SDP("192.0.2.5"))

# ------------------------------------------------------ RFC 4475 §3.4 backward compatibility
M["rfc4475/valid", "inv2543"] = msg('''INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp
''', "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.5\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 49217 RTP/AVP 0\n")

# ---------------------------------------------------------------- RFC 5118 (IPv6)
SDP6 = lambda a: ("v=0\no=assistant 971731711378798081 0 IN IP6 %s\ns=Live video feed\nc=IN IP6 %s\nt=0 0\n"
                  "m=audio 6000 RTP/AVP 0\na=rtpmap:0 PCMU/8000\nm=video 6024 RTP/AVP 107\n"
                  "a=rtpmap:107 H263-1998/90000\n" % (a, a))

def reg(name, ruri, contact, via="Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111"):
    return msg('''REGISTER %s SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=81x2
%s
Call-ID: SSG9559905523997077@hlau_4100
Max-Forwards: 70
Contact: "Caller" <%s>
CSeq: 98176 REGISTER
Content-Length: 0
''' % (ruri, via, contact))

M["rfc5118/valid", "ipv6-good"] = reg("ipv6-good", "sip:[2001:db8::10]", "sip:caller@[2001:db8::1]")
M["rfc5118/invalid", "ipv6-bad"] = reg("ipv6-bad", "sip:2001:db8::10", "sip:caller@[2001:db8::1]")
M["rfc5118/valid", "port-ambiguous"] = reg("port-ambiguous", "sip:[2001:db8::10:5070]", "sip:caller@[2001:db8::1]")
M["rfc5118/valid", "port-unambiguous"] = reg("port-unambiguous", "sip:[2001:db8::10]:5070",
                                             "sip:caller@[2001:db8::1]")

def resp(name, received):
    return msg('''SIP/2.0 200 OK
Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111;received=%s
To: sip:user@example.com;tag=fw4d5c0eyf
From: sip:user@example.com;tag=81x2
Call-ID: SSG9559905523997077@hlau_4100
CSeq: 98176 REGISTER
Content-Length: 0
''' % received)

M["rfc5118/valid", "via-received-param-with-delim"] = resp("", "[2001:db8::9:255]")
M["rfc5118/valid", "via-received-param-no-delim"] = resp("", "2001:db8::9:255")

def invite6(name, ruri_host, contact, sdp, via):
    return msg('''INVITE sip:user@%s SIP/2.0
To: sip:user@example.com
From: sip:user@east.example.com;tag=81x2
%s
Call-ID: SSG9559905523997077@hlau_4100
Contact: %s
CSeq: 8612 INVITE
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: %d
''' % (ruri_host, via, contact, len(crlf(sdp))), sdp)

M["rfc5118/valid", "ipv6-in-sdp"] = invite6("", "[2001:db8::10]", "<sip:caller@[2001:db8::1]>",
    SDP6("2001:db8::1"), "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111")
M["rfc5118/valid", "mult-ip-in-header"] = msg('''BYE sip:user@host.example.net SIP/2.0
Via: SIP/2.0/UDP [2001:db8::9:1]:6050;branch=z9hG4bKas3-111
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKjhja8781hjuaij65144
Via: SIP/2.0/TCP [2001:db8::9:255];branch=z9hG4bK451jj;received=192.0.2.200
Call-ID: 997077@lau_4100
Max-Forwards: 70
CSeq: 89187 BYE
To: sip:user@example.net;tag=9817--94
From: sip:user@example.com;tag=81x2
Content-Length: 0
''')
M["rfc5118/valid", "mult-ip-in-sdp"] = invite6("", "[2001:db8::10]", "<sip:caller@[2001:db8::9:1]>",
    SDP6("2001:db8::1").replace("c=IN IP6 2001:db8::1\n", "c=IN IP6 2001:db8::1\n")
    + "c=IN IP4 192.0.2.1\n", "Via: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111")
M["rfc5118/valid", "ipv4-mapped-ipv6"] = invite6("", "[::ffff:192.0.2.10]", "<sip:caller@[::ffff:192.0.2.1]>",
    SDP6("::ffff:192.0.2.1"), "Via: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKas3-111")
M["rfc5118/valid", "ipv6-bug-abnf-3-colons"] = msg('''OPTIONS sip:[2001:db8:::192.0.2.1] SIP/2.0
To: sip:[2001:db8:::192.0.2.1]
From: sip:user@example.com;tag=810x2
Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111
Call-ID: G9559905523997077@hlau_4100
CSeq: 689 OPTIONS
Max-Forwards: 70
Content-Length: 0
''')
M["rfc5118/valid", "ipv6-correct-abnf-2-colons"] = msg('''OPTIONS sip:[2001:db8::192.0.2.1] SIP/2.0
To: sip:[2001:db8::192.0.2.1]
From: sip:user@example.com;tag=810x2
Via: SIP/2.0/UDP lab1.east.example.com;branch=z9hG4bKas3-111
Call-ID: G9559905523997077@hlau_4100
CSeq: 689 OPTIONS
Max-Forwards: 70
Content-Length: 0
''')

for (d, name), data in sorted(M.items()):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".sip"), "wb") as f:
        f.write(data)
    # Report declared vs actual body length, to check the transcription.
    head, _, body = data.partition(b"\r\n\r\n")
    print("%-45s %5d bytes, body %4d" % (d + "/" + name, len(data), len(body)))
