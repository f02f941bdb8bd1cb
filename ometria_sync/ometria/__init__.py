"""The Ometria side: the push seam, the HTTP client and the dry-run writer."""
