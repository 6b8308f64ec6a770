// hbone-client: an HBONE client that shares no code with Weft (Go's crypto/tls and
// golang.org/x/net/http2), used to check Weft's :15008 server against an independent
// implementation. It opens mutual TLS 1.3 with ALPN h2 to -addr, sends CONNECT -authority,
// writes -marker, half-closes, reads the echo to EOF and prints one JSON line.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

type result struct {
	Status     int    `json:"status"`
	Reply      string `json:"reply"`
	ServerID   string `json:"serverIdentity"`
	TLSVersion string `json:"tlsVersion"`
	ALPN       string `json:"alpn"`
	Error      string `json:"error,omitempty"`
}

func main() {
	addr := flag.String("addr", "", "ip:port of the HBONE listener")
	authority := flag.String("authority", "", ":authority of the CONNECT (ip:port of the app)")
	certFile := flag.String("cert", "", "client certificate chain (PEM)")
	keyFile := flag.String("key", "", "client private key (PEM)")
	caFile := flag.String("ca", "", "mesh roots (PEM)")
	expectID := flag.String("expect-id", "", "the server's expected spiffe:// URI SAN")
	marker := flag.String("marker", "hello", "bytes to send through the tunnel")
	timeout := flag.Duration("timeout", 10*time.Second, "overall deadline")
	flag.Parse()

	res := result{}
	err := run(*addr, *authority, *certFile, *keyFile, *caFile, *expectID, *marker, *timeout, &res)
	if err != nil {
		res.Error = err.Error()
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if err != nil {
		os.Exit(1)
	}
}

func run(addr, authority, certFile, keyFile, caFile, expectID, marker string, timeout time.Duration, res *result) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("load client cert: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return errors.New("no roots in -ca")
	}
	cfg := &tls.Config{
		// Present the certificate whatever CAs the server names (as ztunnel does), so the
		// server, not Go's CA matching, decides about a chain from another root.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		MinVersion:           tls.VersionTLS13,
		NextProtos:           []string{"h2"},
		// Verify the chain ourselves: the server is identified by its URI SAN, not a hostname.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, 0, len(raw))
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs = append(certs, c)
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				return err
			}
			for _, u := range certs[0].URIs {
				res.ServerID = u.String()
			}
			if expectID != "" && res.ServerID != expectID {
				return fmt.Errorf("server identity %q, expected %q", res.ServerID, expectID)
			}
			return nil
		},
	}
	deadline := time.Now().Add(timeout)
	raw, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	raw.SetDeadline(deadline)
	conn := tls.Client(raw, cfg)
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	st := conn.ConnectionState()
	res.ALPN = st.NegotiatedProtocol
	res.TLSVersion = tls.VersionName(st.Version)
	if st.NegotiatedProtocol != "h2" {
		return fmt.Errorf("ALPN %q, not h2", st.NegotiatedProtocol)
	}
	// TLS 1.3: the server judges our certificate only after our Finished, so its verdict (an
	// alert, or its SETTINGS frame) is the first thing it sends. Read that before writing the
	// HTTP/2 preface: a preface written first races the alert, the server closes with unread
	// bytes, and the reset can lose the alert (EPIPE instead of the reason).
	first, err := readFirst(conn, deadline)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tr := &http2.Transport{}
	cc, err := tr.NewClientConn(&prefixConn{Conn: conn, buf: first})
	if err != nil {
		return pendingAlert(conn, err)
	}
	pr, pw := io.Pipe()
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Host: authority},
		Host:   authority,
		Header: http.Header{"Forwarded": {fmt.Sprintf("for=%q", conn.LocalAddr().String())}},
		Body:   pr,
	}
	type answer struct {
		resp *http.Response
		err  error
	}
	ch := make(chan answer, 1)
	go func() {
		r, err := cc.RoundTrip(req)
		ch <- answer{r, err}
	}()
	a := <-ch
	if a.err != nil {
		return pendingAlert(conn, a.err)
	}
	res.Status = a.resp.StatusCode
	if a.resp.StatusCode != 200 {
		return fmt.Errorf("CONNECT answered %d", a.resp.StatusCode)
	}
	go func() {
		io.Copy(pw, strings.NewReader(marker))
		pw.Close() // END_STREAM: the half-close
	}()
	body, err := io.ReadAll(a.resp.Body)
	res.Reply = string(body)
	if err != nil {
		return err
	}
	return nil
}

// pendingAlert: in TLS 1.3 the server judges the client certificate after the client's
// handshake has completed, so its alert arrives on the first read. A write that raced it (the
// HTTP/2 preface) fails first with EPIPE or a generic http2 error; the alert is still in the
// receive buffer, so read it and report it instead when there is one.
func pendingAlert(conn *tls.Conn, err error) error {
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if _, rerr := conn.Read(make([]byte, 1)); rerr != nil && strings.Contains(rerr.Error(), "remote error: tls:") {
		return fmt.Errorf("tls: %w", rerr)
	}
	return err
}

// readFirst reads the server's first bytes after the handshake (its SETTINGS, or an alert).
func readFirst(conn *tls.Conn, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 16*1024)
	conn.SetReadDeadline(deadline) // the run's overall deadline, as set on the raw connection
	n, err := conn.Read(buf)
	if n > 0 {
		return buf[:n], nil
	}
	return nil, err
}

// prefixConn replays bytes already read before reading on.
type prefixConn struct {
	net.Conn
	buf []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}
