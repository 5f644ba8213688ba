"""The vendor's product catalogue: SKUs with list prices and (internal) margin rates."""
