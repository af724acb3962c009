"""Who is acting: user records, admin user management, passwords, login sessions and lockout
(login), the cookie key (login_key) and column profiles."""
