"""OpenID Connect door: the relying party for Okta and the service-wide default provider."""
