"""Authentication: the AuthManager feature and the schemes it drives."""
