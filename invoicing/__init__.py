"""Payments, charges, invoices and credit notes."""
