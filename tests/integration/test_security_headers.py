def test_every_response_carries_security_headers(client):
    for path in ("/", "/no/such/page", "/static/portal.css", "/hello"):
        headers = client.get(path).headers
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp, path
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_cookies_are_httponly_and_samesite(client):
    page = client.get("/?lang=nb")
    cookies = page.headers.get_list("set-cookie")
    lang_cookie = next(c for c in cookies if c.startswith("lang="))
    assert "HttpOnly" in lang_cookie and "SameSite=lax" in lang_cookie.replace("Lax", "lax")
