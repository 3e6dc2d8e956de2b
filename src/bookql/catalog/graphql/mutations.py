"""Administrators' writes to the catalogue (books and categories)."""

from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission

from bookql.accounts.graphql.permissions import IsAdmin
from bookql.catalog.admin import BookChanges, CatalogAdmin, pence
from bookql.catalog.graphql.context import Info
from bookql.catalog.graphql.types import Book, Category
from bookql.core.errors import BadUserInput
from bookql.graphql.relay import expect_global_id

ADMIN: list[type[BasePermission]] = [IsAdmin]


@strawberry.input
class CreateBookInput:
    upc: str
    title: str
    price_excl_tax: float = strawberry.field(description="GBP.")
    availability: int
    rating: int
    category: str = strawberry.field(description="A category's slug or name.")
    tax: float = 0.0
    price_incl_tax: float | None = strawberry.field(
        default=None, description="GBP; must equal priceExclTax + tax (the default)."
    )
    product_type: str = "Books"
    currency: str = "GBP"
    num_reviews: int = 0
    description: str | None = None
    image_url: str = ""
    product_url: str = ""


@strawberry.input(description="Only the fields given change; `description: null` clears it.")
class UpdateBookInput:
    id: strawberry.ID
    title: str | None = strawberry.UNSET
    price_excl_tax: float | None = strawberry.UNSET
    price_incl_tax: float | None = strawberry.UNSET
    tax: float | None = strawberry.UNSET
    availability: int | None = strawberry.UNSET
    rating: int | None = strawberry.UNSET
    category: str | None = strawberry.UNSET
    product_type: str | None = strawberry.UNSET
    currency: str | None = strawberry.UNSET
    num_reviews: int | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    image_url: str | None = strawberry.UNSET
    product_url: str | None = strawberry.UNSET
    version: int | None = strawberry.field(
        default=None,
        description="The book's `version` as you read it: if it has changed since, nothing"
        " changes and the error is CONFLICT. Leave it out to write regardless.",
    )


@strawberry.input
class DeleteBookInput:
    id: strawberry.ID
    version: int | None = strawberry.field(
        default=None,
        description="The book's `version` as you read it: if it has changed since, nothing"
        " changes and the error is CONFLICT. Leave it out to write regardless.",
    )


@strawberry.input
class CreateCategoryInput:
    name: str
    slug: str | None = strawberry.field(default=None, description="Default: from the name.")


@strawberry.input
class UpdateCategoryInput:
    id: strawberry.ID
    name: str | None = None
    slug: str | None = None
    version: int | None = strawberry.field(
        default=None,
        description="The category's `version` as you read it: if it has changed since, nothing"
        " changes and the error is CONFLICT. Leave it out to write regardless.",
    )


@strawberry.type
class BookPayload:
    book: Book


@strawberry.type
class CategoryPayload:
    category: Category


def _refuse_nulls(input: UpdateBookInput) -> None:
    """Leave a field out to keep it; only the description may be set to null."""
    for name, value in vars(input).items():
        if value is None and name not in ("description", "version"):
            field = "".join(
                part.capitalize() if i else part for i, part in enumerate(name.split("_"))
            )
            raise BadUserInput(f"`{field}` cannot be null: leave it out to keep it", field=field)


def _given(value: object) -> bool:
    return value is not strawberry.UNSET and value is not None


async def _category_id(info: Info, key: str) -> int:
    row = await info.context.catalog.category_by_slug_or_name.load(key)
    if row is None:
        raise BadUserInput(f"no category {key!r} (give a slug or a name)", field="category")
    return int(row.id)


def _admin(info: Info) -> CatalogAdmin:
    return CatalogAdmin(info.context.engine)


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(permission_classes=ADMIN)
    async def create_book(self, info: Info, input: CreateBookInput) -> BookPayload:
        changes = BookChanges(
            title=input.title,
            product_type=input.product_type,
            price_excl_tax_pence=pence("priceExclTax", input.price_excl_tax),
            tax_pence=pence("tax", input.tax),
            price_incl_tax_pence=(
                pence("priceInclTax", input.price_incl_tax)
                if input.price_incl_tax is not None
                else None
            ),
            currency=input.currency,
            availability=input.availability,
            rating=input.rating,
            num_reviews=input.num_reviews,
            image_url=input.image_url or None,
            product_url=input.product_url or None,
            category_id=await _category_id(info, input.category),
            description=input.description or None,  # "" means no description
        )
        row = await _admin(info).create_book(input.upc, changes)
        return BookPayload(book=Book.from_row(row))

    @strawberry.mutation(
        description="Price or stock changes are recorded in the price history.",
        permission_classes=ADMIN,
    )
    async def update_book(self, info: Info, input: UpdateBookInput) -> BookPayload:
        upc = expect_global_id(input.id, "Book")
        _refuse_nulls(input)
        changes = BookChanges(
            title=input.title if _given(input.title) else None,
            product_type=input.product_type if _given(input.product_type) else None,
            currency=input.currency if _given(input.currency) else None,
            availability=input.availability if _given(input.availability) else None,
            rating=input.rating if _given(input.rating) else None,
            num_reviews=input.num_reviews if _given(input.num_reviews) else None,
            image_url=input.image_url if _given(input.image_url) else None,
            product_url=input.product_url if _given(input.product_url) else None,
            description=input.description or None,
            clear_description=input.description is None or input.description == "",
        )
        for name, attribute, value in (
            ("priceExclTax", "price_excl_tax_pence", input.price_excl_tax),
            ("priceInclTax", "price_incl_tax_pence", input.price_incl_tax),
            ("tax", "tax_pence", input.tax),
        ):
            if _given(value):
                setattr(changes, attribute, pence(name, value))  # type: ignore[arg-type]
        if _given(input.category):
            changes.category_id = await _category_id(info, input.category)  # type: ignore[arg-type]
        row = await _admin(info).update_book(upc, changes, version=input.version)
        return BookPayload(book=Book.from_row(row))

    @strawberry.mutation(
        description="Marks the book removed; it leaves lists but keeps its history.",
        permission_classes=ADMIN,
    )
    async def delete_book(self, info: Info, input: DeleteBookInput) -> BookPayload:
        row = await _admin(info).delete_book(
            expect_global_id(input.id, "Book"), version=input.version
        )
        return BookPayload(book=Book.from_row(row))

    @strawberry.mutation(permission_classes=ADMIN)
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CategoryPayload:
        row = await _admin(info).create_category(input.name, input.slug)
        return CategoryPayload(category=Category.from_row(row))

    @strawberry.mutation(permission_classes=ADMIN)
    async def update_category(self, info: Info, input: UpdateCategoryInput) -> CategoryPayload:
        key = expect_global_id(input.id, "Category")
        row = await _admin(info).update_category(
            int(key) if key.isdigit() else -1, input.name, input.slug, version=input.version
        )
        return CategoryPayload(category=Category.from_row(row))
