"""One naming scheme for product categories, so that every source's categories meet the same labels.

The category task speaks the original release's capitalised names (`Books`,
`Office Products`, `Health & Personal Care`). Other sources name categories
differently: the Multilingual Amazon Reviews Corpus uses lower-case slugs
(`book`, `office_product`, `drugstore`) and the Blitzer multi-domain set its
own domain names. `SLUG_TO_RELEASE` is the explicit table between them.

Matching ignores case, underscores, hyphens and repeated spaces (so
`Digital_Ebook_Purchase`, `digital ebook purchase` and `digital-ebook-purchase`
are one name); nothing else is inferred. A name that is neither a release
name nor in the table is unmapped: the category task counts and reports it,
and never guesses a label for it.

Judgement calls, stated:
- `home_improvement` -> `Tools`: the corpus' slug comes from Amazon's
  "Tools & Home Improvement" department, the study's `Tools` label.
- `digital_ebook_purchase` and `digital_video_download` stay the release's
  own `Digital_Ebook_Purchase` and `Digital_Video_Download` categories, not
  `Books` and `Video`: the release keeps them apart, and merging would change
  what the study's labels mean.
- `other` and `industrial_supplies` have no release counterpart: unmapped.
- The study's `Music` and `Video` have no slug in the multilingual corpus, so
  those classes are empty on it (the category task reports empty classes).
"""

from __future__ import annotations

import re

STUDY_CATEGORIES: tuple[str, ...] = (
    "Books",
    "Music",
    "Video",
    "Toys",
    "Tools",
    "Office Products",
    "Electronics",
    "Kitchen",
    "Sports",
    "Shoes",
    "Health & Personal Care",
)
"""The study's 11 category labels, in the study's order."""

RELEASE_CATEGORIES: tuple[str, ...] = (
    "Apparel",
    "Automotive",
    "Baby",
    "Beauty",
    "Books",
    "Camera",
    "Digital_Ebook_Purchase",
    "Digital_Music_Purchase",
    "Digital_Software",
    "Digital_Video_Download",
    "Digital_Video_Games",
    "Electronics",
    "Furniture",
    "Gift Card",
    "Grocery",
    "Health & Personal Care",
    "Home",
    "Home Entertainment",
    "Home Improvement",
    "Jewelry",
    "Kitchen",
    "Lawn and Garden",
    "Luggage",
    "Major Appliances",
    "Mobile_Apps",
    "Mobile_Electronics",
    "Music",
    "Musical Instruments",
    "Office Products",
    "Outdoors",
    "PC",
    "Personal_Care_Appliances",
    "Pet Products",
    "Shoes",
    "Software",
    "Sports",
    "Tools",
    "Toys",
    "Video",
    "Video DVD",
    "Video Games",
    "Watches",
    "Wireless",
)
"""The `product_category` values of the original Amazon Customer Reviews release."""

SLUG_TO_RELEASE: dict[str, str] = {
    # Multilingual Amazon Reviews Corpus slugs.
    "apparel": "Apparel",
    "automotive": "Automotive",
    "baby_product": "Baby",
    "beauty": "Beauty",
    "book": "Books",
    "camera": "Camera",
    "digital_ebook_purchase": "Digital_Ebook_Purchase",
    "digital_video_download": "Digital_Video_Download",
    "drugstore": "Health & Personal Care",
    "electronics": "Electronics",
    "furniture": "Furniture",
    "grocery": "Grocery",
    "home": "Home",
    "home_improvement": "Tools",
    "jewelry": "Jewelry",
    "kitchen": "Kitchen",
    "lawn_and_garden": "Lawn and Garden",
    "luggage": "Luggage",
    "musical_instruments": "Musical Instruments",
    "office_product": "Office Products",
    "pc": "PC",
    "personal_care_appliances": "Personal_Care_Appliances",
    "pet_products": "Pet Products",
    "shoes": "Shoes",
    "sports": "Sports",
    "toy": "Toys",
    "video_games": "Video Games",
    "watch": "Watches",
    "wireless": "Wireless",
    # Blitzer et al. (2007) multi-domain sentiment product categories.
    "dvd": "Video DVD",
    "kitchen & housewares": "Kitchen",
    "computer & video games": "Video Games",
}
"""Explicit mapping from other schemes' category names to release names."""


def normalise(name: str) -> str:
    """The spelling-insensitive key of a category name: lower case, `_`/`-` as spaces, spaces collapsed."""
    return re.sub(r"[\s_\-]+", " ", name).strip().casefold()


_LOOKUP: dict[str, str] = {normalise(name): name for name in RELEASE_CATEGORIES}
_LOOKUP.update({normalise(slug): name for slug, name in SLUG_TO_RELEASE.items()})


def to_release_name(raw: str) -> str | None:
    """The release name for a source's category name, or None when the table has no entry."""
    return _LOOKUP.get(normalise(raw))
