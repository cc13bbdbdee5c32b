"""Word lists for the synthetic catalog: categories, product types, options, brands, phrasings.

Data only; `envs/shop/synthetic.py` turns it into products and goals. The lists
are chosen so that WebShop's reward can tell things apart (checked in
tests/envs/test_synthetic.py):

- within a category no attribute phrase fuzzy-matches another (token-set ratio
  above 85) or contains another, so a product lacking a goal attribute really
  scores 0 on it;
- within a product type no option value matches another value of the type
  under WebShop's option matching (color normalization + fuzzy ratio), so a
  product lacking the goal's value really misses that option. This is why sizes
  avoid hyphens and decimals ("x-large" would match "large": WebShop's fuzzy
  scorer splits on non-word characters) and why two values never contain the
  same base color word ("dark roast" and "dark chocolate" both become "dark").
"""
from __future__ import annotations

from dataclasses import dataclass

# WebShop's five categories: key -> the first breadcrumb part.
CATEGORY_ROOTS: dict[str, str] = {
    "beauty": "Beauty & Personal Care",
    "food": "Grocery & Gourmet Food",
    "fashion": "Clothing, Shoes & Jewelry",
    "furniture": "Home & Kitchen",
    "electronics": "Electronics",
}

# Attribute phrases per category (WebShop's `Attributes` are short phrases like these).
CATEGORY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "beauty": (
        "sulfate free", "paraben free", "cruelty free", "alcohol free", "long lasting",
        "natural ingredients", "dry skin", "sensitive skin", "oily skin", "hair growth",
        "dry hair", "damaged hair", "thin hair", "hyaluronic acid", "anti aging", "fine lines",
        "dark circles", "easy apply", "travel size", "tea tree", "argan oil", "coconut oil",
        "shea butter", "aloe vera", "vitamin c", "non toxic", "human hair", "heat resistant",
        "natural looking", "quick dry", "high gloss", "chip resistant", "easy clean",
        "easy carry", "soft bristles", "storage case",
    ),
    "food": (
        "gluten free", "non gmo", "sugar free", "low carb", "keto friendly", "high protein",
        "dairy free", "plant based", "individually wrapped", "low calorie", "great gift",
        "usda organic", "low sodium", "fat free", "caffeine free", "kosher certified",
        "whole grain", "nut free", "grass fed", "fair trade", "cold pressed", "extra virgin",
        "resealable bag", "single origin", "low acid", "small batch", "low sugar",
    ),
    "fashion": (
        "machine wash", "hand wash", "short sleeve", "long sleeve", "slim fit", "relaxed fit",
        "button closure", "zipper closure", "drawstring closure", "elastic waist", "high waist",
        "quick drying", "moisture wicking", "non slip", "rubber sole", "lace up",
        "arch support", "memory foam", "breathable mesh", "light weight", "daily wear",
        "crew neck", "cotton blend", "stretch denim", "straight leg", "tummy control",
        "squat proof", "fleece lined", "winter warm", "detachable hood", "sun protection",
        "adjustable strap", "shock absorption", "kangaroo pocket", "pull on", "water resistant",
    ),
    "furniture": (
        "easy assemble", "easy clean", "solid wood", "living room", "dining room",
        "space saving", "storage space", "high density", "wood finish", "metal frame",
        "mid century", "lumbar support", "heavy duty", "home office", "memory foam",
        "water resistant", "non slip", "adjustable height", "stainless steel", "pu leather",
        "button tufted", "cable management", "tempered glass", "lift top", "charging station",
        "swivel seat", "foot rest",
    ),
    "electronics": (
        "high definition", "fast charging", "noise cancelling", "water resistant",
        "plug play", "high speed", "usb port", "wireless bluetooth", "hands free",
        "stereo sound", "touch control", "heavy duty", "aluminum alloy", "power delivery",
        "low latency", "night vision", "motion detection", "easy install", "charging case",
        "nylon braided", "gold plated", "ultra hd", "drop protection", "raised edges",
        "wireless charging", "led display", "easy carry", "ergonomic design",
        "rechargeable battery", "silent click", "usb receiver", "rgb backlit", "hot swappable",
        "anti ghosting", "detachable cable", "two way audio", "cloud storage", "heart rate",
        "sleep tracking",
    ),
}

# Option value pools, shared by several types. Values are lower case, as in WebShop.
APPAREL_SIZES = ("xs", "small", "medium", "large", "xl", "xxl")
SHOE_SIZES = ("6", "7", "8", "9", "10", "11", "12")
WAIST_SIZES = ("28", "30", "32", "34", "36", "38")
APPAREL_COLORS = (
    "black", "white", "navy", "grey", "red", "olive", "maroon", "khaki", "charcoal",
    "beige", "pink", "blue", "green", "purple", "yellow", "brown",
)
FURNITURE_COLORS = ("black", "white", "walnut", "espresso", "grey", "natural", "brown", "teal")
DEVICE_COLORS = ("black", "white", "silver", "blue", "red", "grey", "pink", "green", "purple")
PACKS = ("1 pack", "2 pack", "3 pack", "4 pack", "6 pack")
SCENTS = (
    "lavender", "eucalyptus", "citrus", "unscented", "mint", "cedarwood",
    "cucumber", "vanilla", "jasmine", "coconut",
)
FURNITURE_STYLES = ("classic", "modern", "vintage", "industrial", "farmhouse", "minimalist")
CABLE_LENGTHS = ("3 ft", "6 ft", "10 ft", "15 ft")


@dataclass(frozen=True)
class ProductType:
    """One kind of product: what is searched for (`query`) and how it is described.

    Attributes:
        query: the product type, lower case (WebShop's `query`, e.g. "shampoo").
        category: key of CATEGORY_ROOTS.
        path: breadcrumb parts after the category root; the last one is the leaf.
        nouns: the lower-cased nouns of `query` (for `title_nouns`).
        attributes: the attribute phrases such products can have (from CATEGORY_ATTRIBUTES).
        options: option name -> value pool; the first option is the "primary" one
            that option twins differ in.
        price: (low, high) dollars.
        plural: whether `query` is a plural noun ("coffee beans"), for grammar.
        mass: whether `query` is a mass noun ("olive oil": "some olive oil").
    """

    query: str
    category: str
    path: tuple[str, ...]
    nouns: tuple[str, ...]
    attributes: tuple[str, ...]
    options: dict[str, tuple[str, ...]]
    price: tuple[float, float]
    plural: bool = False
    mass: bool = False


def _t(query, category, path, nouns, attributes, options, price, plural=False, mass=False) -> ProductType:
    return ProductType(
        query=query, category=category, path=tuple(path.split(" / ")), nouns=tuple(nouns.split()),
        attributes=tuple(a.strip() for a in attributes.split(",")), options=options,
        price=price, plural=plural, mass=mass,
    )


PRODUCT_TYPES: tuple[ProductType, ...] = (
    # --- beauty -------------------------------------------------------------------
    _t("shampoo", "beauty", "Hair Care / Shampoo & Conditioner / Shampoos", "shampoo",
       "sulfate free, paraben free, cruelty free, natural ingredients, hair growth, dry hair, "
       "damaged hair, tea tree, argan oil, coconut oil",
       {"scent": SCENTS, "size": ("8 oz", "12 oz", "16 oz", "32 oz")}, (6, 38)),
    _t("conditioner", "beauty", "Hair Care / Shampoo & Conditioner / Conditioners", "conditioner",
       "sulfate free, paraben free, cruelty free, natural ingredients, dry hair, damaged hair, "
       "thin hair, argan oil, coconut oil, shea butter",
       {"scent": SCENTS, "size": ("8 oz", "12 oz", "16 oz", "32 oz")}, (6, 36)),
    _t("face moisturizer", "beauty", "Skin Care / Face / Creams & Moisturizers / Face Moisturizers",
       "face moisturizer",
       "dry skin, sensitive skin, oily skin, hyaluronic acid, anti aging, fine lines, paraben free, "
       "cruelty free, vitamin c, aloe vera, non toxic, alcohol free",
       {"size": ("30 ml", "50 ml", "100 ml", "2 oz", "4 oz"), "scent": ("unscented", "lavender", "cucumber", "vanilla")},
       (9, 65)),
    _t("eye cream", "beauty", "Skin Care / Eyes / Creams", "eye cream",
       "dark circles, fine lines, anti aging, hyaluronic acid, sensitive skin, paraben free, "
       "cruelty free, vitamin c, non toxic, natural ingredients",
       {"size": ("15 ml", "30 ml", "50 ml", "1 oz")}, (10, 70)),
    _t("face serum", "beauty", "Skin Care / Face / Serums", "face serum",
       "hyaluronic acid, vitamin c, anti aging, fine lines, dark circles, dry skin, oily skin, "
       "sensitive skin, paraben free, cruelty free, alcohol free",
       {"size": ("15 ml", "30 ml", "50 ml", "2 oz"), "item package quantity": ("1 pack", "2 pack", "3 pack")},
       (10, 60)),
    _t("lipstick", "beauty", "Makeup / Lips / Lipstick", "lipstick",
       "long lasting, cruelty free, paraben free, natural ingredients, easy apply, non toxic, "
       "shea butter, travel size, vitamin c",
       {"color": ("red", "pink", "nude", "plum", "coral", "mauve", "berry", "wine", "peach"),
        "style": ("matte", "satin", "gloss", "sheer")}, (5, 32)),
    _t("nail polish", "beauty", "Foot, Hand & Nail Care / Nail Art & Polish / Nail Polish", "nail polish",
       "long lasting, quick dry, non toxic, cruelty free, easy apply, high gloss, chip resistant, "
       "travel size, paraben free",
       {"color": ("red", "pink", "nude", "coral", "navy", "black", "white", "teal", "lilac", "gold"),
        "item package quantity": ("1 pack", "2 pack", "3 pack", "6 pack")}, (4, 24)),
    _t("hair extension", "beauty", "Hair Care / Hair Extensions, Wigs & Accessories / Hair Extensions",
       "hair extension",
       "human hair, heat resistant, natural looking, long lasting, easy apply, thin hair, "
       "travel size, non toxic",
       {"color": ("black", "brown", "blonde", "auburn", "burgundy", "grey", "platinum"),
        "size": ("12 in", "18 in", "24 in")}, (15, 120)),
    _t("body wash", "beauty", "Personal Care / Bath & Bathing Accessories / Bath / Body Washes", "body wash",
       "sulfate free, paraben free, cruelty free, natural ingredients, dry skin, sensitive skin, "
       "shea butter, aloe vera, coconut oil, tea tree",
       {"scent": SCENTS, "size": ("12 oz", "16 oz", "20 oz", "32 oz")}, (5, 30)),
    _t("makeup brush set", "beauty", "Tools & Accessories / Makeup Brushes & Tools / Brush Sets",
       "makeup brush set",
       "easy clean, travel size, cruelty free, soft bristles, easy carry, storage case, long lasting, "
       "non toxic",
       {"color": ("black", "pink", "white", "gold", "purple", "green"),
        "item package quantity": ("1 pack", "2 pack")}, (8, 45)),
    # --- food ---------------------------------------------------------------------
    _t("coffee beans", "food", "Beverages / Coffee, Tea & Cocoa / Coffee / Whole Coffee Beans", "coffee beans",
       "usda organic, fair trade, non gmo, kosher certified, low acid, single origin, great gift, "
       "resealable bag, small batch",
       {"flavor name": ("french vanilla", "hazelnut", "original", "caramel", "mocha", "cinnamon",
                        "dark roast", "breakfast blend"),
        "size": ("12 oz", "2 lb", "5 lb")}, (8, 48), plural=True),
    _t("protein bar", "food", "Snack Foods / Bars / Protein Bars", "protein bar",
       "high protein, gluten free, low carb, keto friendly, sugar free, non gmo, individually wrapped, "
       "plant based, dairy free, low calorie",
       {"flavor name": ("chocolate chip", "peanut butter", "cookie dough", "birthday cake",
                        "salted caramel", "lemon", "wild berry", "coconut almond"),
        "item package quantity": ("1 pack", "2 pack", "3 pack", "4 pack")}, (10, 45)),
    _t("tea bags", "food", "Beverages / Coffee, Tea & Cocoa / Tea / Tea Bags", "tea bags",
       "caffeine free, usda organic, non gmo, kosher certified, gluten free, individually wrapped, "
       "fair trade, sugar free, great gift",
       {"flavor name": ("chamomile", "mint", "earl grey", "jasmine green", "english breakfast",
                        "lemon ginger", "hibiscus", "chai spice"),
        "item package quantity": ("1 pack", "2 pack", "4 pack", "6 pack")}, (4, 30), plural=True),
    _t("potato chips", "food", "Snack Foods / Chips & Crisps / Potato Chips", "potato chips",
       "gluten free, non gmo, kosher certified, low sodium, individually wrapped, dairy free, nut free, "
       "plant based, low calorie",
       {"flavor name": ("sea salt", "sour cream", "barbecue", "salt vinegar", "jalapeno", "cheddar",
                        "original", "honey bbq"),
        "size": ("1 oz", "5 oz", "8 oz")}, (3, 28), plural=True),
    _t("trail mix", "food", "Snack Foods / Trail Mix", "trail mix",
       "non gmo, gluten free, high protein, kosher certified, individually wrapped, resealable bag, "
       "plant based, dairy free, low sugar",
       {"flavor name": ("tropical", "chocolate cherry", "cranberry almond", "honey roasted",
                        "sweet salty", "maple nut", "omega"),
        "size": ("8 oz", "1 lb", "3 lb")}, (6, 35), mass=True),
    _t("beef jerky", "food", "Snack Foods / Jerky & Dried Meats / Beef Jerky", "beef jerky",
       "high protein, gluten free, low carb, keto friendly, grass fed, individually wrapped, "
       "low calorie, sugar free, resealable bag",
       {"flavor name": ("original", "teriyaki", "spicy", "sweet chili", "hickory smoked",
                        "jalapeno", "black pepper"),
        "size": ("3 oz", "8 oz", "16 oz")}, (6, 40), mass=True),
    _t("gummy candy", "food", "Candy & Chocolate / Gummy Candy", "gummy candy",
       "individually wrapped, gluten free, fat free, dairy free, great gift, kosher certified, "
       "plant based, non gmo, sugar free",
       {"flavor name": ("sour", "mixed fruit", "watermelon", "cherry", "tropical", "peach", "cola",
                        "green apple"),
        "size": ("5 oz", "2 lb", "5 lb")}, (3, 30), mass=True),
    _t("olive oil", "food", "Pantry Staples / Cooking & Baking / Oils / Olive Oil", "olive oil",
       "extra virgin, cold pressed, non gmo, usda organic, kosher certified, gluten free, great gift, "
       "single origin, small batch",
       {"flavor name": ("plain", "garlic", "lemon", "basil", "chili", "truffle"),
        "size": ("250 ml", "500 ml", "750 ml", "1 liter")}, (7, 55), mass=True),
    _t("peanut butter", "food", "Pantry Staples / Jams, Jellies & Sweet Spreads / Nut & Seed Butters / Peanut Butter",
       "peanut butter",
       "high protein, non gmo, gluten free, keto friendly, sugar free, plant based, dairy free, "
       "kosher certified, low sodium, usda organic",
       {"flavor name": ("smooth", "crunchy", "honey roasted", "chocolate", "maple", "cinnamon raisin"),
        "size": ("16 oz", "28 oz", "40 oz")}, (4, 25), mass=True),
    _t("granola", "food", "Breakfast Foods / Cereals / Granola", "granola",
       "whole grain, gluten free, non gmo, high protein, low sugar, plant based, kosher certified, "
       "usda organic, dairy free, resealable bag",
       {"flavor name": ("honey almond", "maple pecan", "dark chocolate", "cinnamon", "wild berry",
                        "coconut", "vanilla"),
        "size": ("11 oz", "24 oz", "32 oz")}, (4, 28), mass=True),
    # --- fashion ------------------------------------------------------------------
    _t("men's t-shirt", "fashion", "Men / Clothing / Shirts / T-Shirts", "men t-shirt",
       "machine wash, short sleeve, slim fit, moisture wicking, quick drying, crew neck, cotton blend, "
       "daily wear, light weight",
       {"color": APPAREL_COLORS, "size": APPAREL_SIZES}, (8, 35)),
    _t("women's leggings", "fashion", "Women / Clothing / Active / Leggings", "women leggings",
       "high waist, moisture wicking, quick drying, machine wash, tummy control, squat proof, pull on, "
       "daily wear, light weight",
       {"color": APPAREL_COLORS, "size": APPAREL_SIZES}, (10, 45), plural=True),
    _t("sneakers", "fashion", "Men / Shoes / Fashion Sneakers", "sneakers",
       "rubber sole, non slip, lace up, arch support, memory foam, breathable mesh, light weight, "
       "daily wear, shock absorption",
       {"color": APPAREL_COLORS, "size": SHOE_SIZES}, (25, 120), plural=True),
    _t("running shoes", "fashion", "Women / Shoes / Athletic / Running", "running shoes",
       "rubber sole, non slip, arch support, memory foam, breathable mesh, light weight, "
       "shock absorption, lace up, moisture wicking",
       {"color": APPAREL_COLORS, "size": SHOE_SIZES}, (30, 140), plural=True),
    _t("hoodie", "fashion", "Men / Clothing / Fashion Hoodies & Sweatshirts", "hoodie",
       "long sleeve, machine wash, relaxed fit, kangaroo pocket, drawstring closure, fleece lined, "
       "winter warm, daily wear, cotton blend",
       {"color": APPAREL_COLORS, "size": APPAREL_SIZES}, (18, 65)),
    _t("jeans", "fashion", "Men / Clothing / Jeans", "jeans",
       "machine wash, slim fit, button closure, zipper closure, stretch denim, straight leg, "
       "daily wear, cotton blend",
       {"color": ("black", "indigo", "grey", "khaki", "navy", "brown"), "size": WAIST_SIZES},
       (20, 90), plural=True),
    _t("winter jacket", "fashion", "Women / Clothing / Coats, Jackets & Vests / Down Jackets", "winter jacket",
       "water resistant, winter warm, zipper closure, fleece lined, detachable hood, long sleeve, "
       "machine wash, light weight",
       {"color": APPAREL_COLORS, "size": APPAREL_SIZES}, (40, 220)),
    _t("socks", "fashion", "Men / Clothing / Socks / Athletic Socks", "socks",
       "moisture wicking, arch support, machine wash, cotton blend, breathable mesh, non slip, "
       "daily wear, quick drying",
       {"color": ("black", "white", "grey", "navy", "multicolor", "beige"), "size": ("small", "medium", "large"),
        "item package quantity": ("3 pack", "6 pack", "1 pack")}, (6, 30), plural=True),
    _t("baseball cap", "fashion", "Men / Accessories / Hats & Caps / Baseball Caps", "baseball cap",
       "adjustable strap, sun protection, cotton blend, quick drying, hand wash, daily wear, "
       "breathable mesh, moisture wicking",
       {"color": APPAREL_COLORS, "style": ("classic", "trucker", "vintage", "snapback")}, (8, 35)),
    _t("women's dress", "fashion", "Women / Clothing / Dresses / Casual", "women dress",
       "short sleeve, elastic waist, hand wash, pull on, daily wear, button closure, crew neck, "
       "light weight, cotton blend",
       {"color": APPAREL_COLORS, "size": APPAREL_SIZES}, (15, 80)),
    # --- furniture ----------------------------------------------------------------
    _t("office chair", "furniture", "Furniture / Home Office Furniture / Home Office Chairs / Home Office Desk Chairs",
       "office chair",
       "lumbar support, adjustable height, home office, easy assemble, heavy duty, high density, "
       "metal frame, swivel seat, foot rest",
       {"color": ("black", "grey", "white", "blue", "pink", "brown"),
        "material": ("mesh", "fabric", "leather", "velvet")}, (60, 380)),
    _t("bookcase", "furniture", "Furniture / Living Room Furniture / Bookcases", "bookcase",
       "easy assemble, solid wood, storage space, space saving, living room, home office, wood finish, "
       "heavy duty, mid century, metal frame",
       {"color": FURNITURE_COLORS, "style": FURNITURE_STYLES}, (40, 320)),
    _t("coffee table", "furniture", "Furniture / Living Room Furniture / Tables / Coffee Tables", "coffee table",
       "living room, easy assemble, storage space, solid wood, mid century, metal frame, wood finish, "
       "easy clean, tempered glass, lift top",
       {"color": FURNITURE_COLORS, "style": FURNITURE_STYLES}, (50, 400)),
    _t("tv stand", "furniture",
       "Furniture / Living Room Furniture / TV & Media Furniture / Television Stands & Entertainment Centers",
       "tv stand",
       "living room, storage space, easy assemble, cable management, metal frame, wood finish, "
       "mid century, heavy duty, solid wood",
       {"color": FURNITURE_COLORS, "size": ("55 in", "65 in", "70 in")}, (60, 450)),
    _t("nightstand", "furniture", "Furniture / Bedroom Furniture / Nightstands", "nightstand",
       "storage space, easy assemble, solid wood, space saving, wood finish, mid century, "
       "charging station, easy clean, metal frame",
       {"color": FURNITURE_COLORS, "style": FURNITURE_STYLES}, (30, 220)),
    _t("bar stool", "furniture", "Furniture / Game & Recreation Room Furniture / Home Bar Furniture / Barstools",
       "bar stool",
       "adjustable height, pu leather, metal frame, non slip, easy assemble, heavy duty, easy clean, "
       "swivel seat, foot rest",
       {"color": FURNITURE_COLORS, "item package quantity": ("1 pack", "2 pack", "4 pack")}, (40, 260)),
    _t("computer desk", "furniture", "Furniture / Home Office Furniture / Home Office Desks", "computer desk",
       "home office, easy assemble, space saving, storage space, metal frame, heavy duty, wood finish, "
       "cable management, water resistant",
       {"color": FURNITURE_COLORS, "size": ("40 in", "47 in", "55 in", "63 in")}, (50, 350)),
    _t("storage ottoman", "furniture", "Furniture / Living Room Furniture / Ottomans", "storage ottoman",
       "storage space, living room, high density, easy assemble, pu leather, button tufted, heavy duty, "
       "easy clean, foot rest",
       {"color": FURNITURE_COLORS, "material": ("velvet", "linen", "fabric", "faux leather")}, (30, 200)),
    _t("shoe rack", "furniture", "Furniture / Entryway Furniture / Shoe Racks", "shoe rack",
       "space saving, easy assemble, metal frame, storage space, heavy duty, stainless steel, "
       "water resistant, non slip, living room",
       {"color": FURNITURE_COLORS, "material": ("bamboo", "metal", "plastic", "wood")}, (20, 120)),
    _t("dining chair", "furniture", "Furniture / Kitchen & Dining Room Furniture / Chairs", "dining chair",
       "dining room, solid wood, easy assemble, pu leather, mid century, easy clean, heavy duty, "
       "lumbar support, metal frame",
       {"color": FURNITURE_COLORS, "item package quantity": ("2 pack", "4 pack", "6 pack")}, (50, 350)),
    # --- electronics --------------------------------------------------------------
    _t("bluetooth speaker", "electronics",
       "Portable Audio & Video / Portable Speakers & Docks / Portable Bluetooth Speakers", "bluetooth speaker",
       "water resistant, stereo sound, hands free, easy carry, usb port, wireless bluetooth, "
       "rechargeable battery, heavy duty, led display",
       {"color": ("black", "blue", "red", "grey", "teal", "camo", "white"),
        "item package quantity": ("1 pack", "2 pack")}, (15, 160)),
    _t("usb-c cable", "electronics", "Computers & Accessories / Cables & Interconnects / USB Cables",
       "usb-c cable",
       "fast charging, high speed, heavy duty, power delivery, aluminum alloy, nylon braided, "
       "plug play, gold plated",
       {"color": DEVICE_COLORS, "size": CABLE_LENGTHS, "item package quantity": ("1 pack", "2 pack", "3 pack")},
       (5, 25)),
    _t("wireless earbuds", "electronics",
       "Headphones, Earbuds & Accessories / Headphones & Earbuds / Earbud Headphones", "earbuds",
       "noise cancelling, water resistant, fast charging, stereo sound, touch control, hands free, "
       "charging case, low latency, wireless bluetooth",
       {"color": ("black", "white", "blue", "pink", "green", "grey", "purple")}, (20, 180), plural=True),
    _t("phone case", "electronics", "Cell Phones & Accessories / Cases, Holsters & Sleeves / Basic Cases",
       "phone case",
       "drop protection, heavy duty, raised edges, wireless charging, easy install, aluminum alloy, "
       "touch control, water resistant",
       {"color": ("black", "clear", "blue", "pink", "purple", "green", "red"),
        "pattern name": ("marble", "floral", "solid", "glitter", "camo")}, (6, 40)),
    _t("hdmi cable", "electronics", "Television & Video / Accessories / Cables / HDMI Cables", "hdmi cable",
       "high speed, ultra hd, gold plated, nylon braided, heavy duty, plug play, high definition, "
       "aluminum alloy",
       {"size": CABLE_LENGTHS, "item package quantity": ("1 pack", "2 pack", "3 pack")}, (6, 30)),
    _t("power bank", "electronics",
       "Cell Phones & Accessories / Accessories / Chargers & Power Adapters / Portable Power Banks", "power bank",
       "fast charging, power delivery, easy carry, usb port, led display, wireless charging, "
       "aluminum alloy, heavy duty",
       {"color": DEVICE_COLORS, "capacity": ("5000mah", "10000mah", "26800mah")}, (15, 90)),
    _t("wireless mouse", "electronics",
       "Computers & Accessories / Computer Accessories & Peripherals / Keyboards, Mice & Accessories / Mice",
       "mouse",
       "plug play, silent click, ergonomic design, easy carry, usb receiver, rechargeable battery, "
       "wireless bluetooth, led display",
       {"color": DEVICE_COLORS, "style": ("silent", "gaming", "vertical", "travel")}, (8, 70)),
    _t("mechanical keyboard", "electronics",
       "Computers & Accessories / Computer Accessories & Peripherals / Keyboards, Mice & Accessories / Keyboards",
       "keyboard",
       "plug play, rgb backlit, hot swappable, aluminum alloy, wireless bluetooth, anti ghosting, "
       "detachable cable, ergonomic design",
       {"color": ("black", "white", "grey", "pink", "blue"), "style": ("linear", "tactile", "clicky")},
       (30, 200)),
    _t("security camera", "electronics",
       "Camera & Photo / Video Surveillance / Surveillance Cameras / Dome Cameras", "security camera",
       "night vision, motion detection, water resistant, two way audio, easy install, high definition, "
       "cloud storage, ultra hd",
       {"item package quantity": PACKS, "color": ("white", "black", "grey")}, (25, 250)),
    _t("smart watch", "electronics", "Wearable Technology / Smartwatches", "smart watch",
       "heart rate, sleep tracking, water resistant, fast charging, touch control, led display, "
       "rechargeable battery, easy install",
       {"color": ("black", "silver", "pink", "blue", "green", "gold"), "size": ("38mm", "41mm", "45mm")},
       (30, 300)),
)

# Title words before the type noun, per category: (text, its nouns). No attribute phrases.
STYLE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "beauty": (("Nourishing", ""), ("Professional", ""), ("Gentle", ""), ("Daily", ""),
               ("Luxury", ""), ("Salon Grade", "salon"), ("Botanical", ""), ("Clean Beauty", "beauty")),
    "food": (("Gourmet", ""), ("Classic", ""), ("Artisan", ""), ("Family Size", "family size"),
             ("Farmhouse", "farmhouse"), ("Premium", ""), ("Everyday", ""), ("Pantry Pack", "pantry pack")),
    "fashion": (("Classic", ""), ("Essential", ""), ("Athletic", ""), ("Casual", ""), ("Premium", ""),
                ("Cotton", "cotton"), ("Performance", "performance"), ("Everyday", "")),
    "furniture": (("Modern", ""), ("Rustic", ""), ("Industrial", ""), ("Oak Veneer", "oak veneer"),
                  ("Steel", "steel"), ("Scandinavian", ""), ("Compact", ""), ("Walnut Grain", "walnut grain")),
    "electronics": (("Portable", ""), ("Pro", ""), ("Compact", ""), ("Smart", ""), ("Ultra Slim", ""),
                    ("Gen 2", "gen"), ("Travel", "travel"), ("Max", "")),
}

# Brands are one invented word: a stem plus a category-flavored ending.
BRAND_STEMS = (
    "Lum", "Ver", "Nor", "Alt", "Kir", "Ros", "Zen", "Mar", "Ori", "Bel", "Cor", "Dal", "Fen",
    "Gal", "Hal", "Jun", "Kel", "Lor", "Mir", "Nov", "Pax", "Quin", "Sol", "Tor", "Vel", "Wyn",
)
BRAND_ENDINGS: dict[str, tuple[str, ...]] = {
    "beauty": ("elle", "ique", "essa", "aura", "ine", "ora"),
    "food": ("harvest", "field", "orchard", "grove", "acre", "bake"),
    "fashion": ("wear", "stitch", "loom", "tailor", "ette", "thread"),
    "furniture": ("haus", "nest", "craft", "dwell", "timber", "loft"),
    "electronics": ("tek", "tronix", "volt", "wave", "byte", "sonic"),
}

# Instruction phrasings. {a_type}: the type with its article ("a shampoo", "coffee beans"),
# {type}: the bare type, {be}: "is" / "are", {attrs}: the goal attributes joined with "and".
INSTRUCTION_TEMPLATES = (
    "i'm looking for {a_type} that {be} {attrs}",
    "i need {a_type} that {be} {attrs}",
    "find me {a_type} that {be} {attrs}",
    "i want to buy {a_type} which {be} {attrs}",
    "get me {a_type} that {be} {attrs}",
    "i am searching for {attrs} {type}",
    "please find {a_type} that {be} {attrs}",
    "i'd like {a_type} that {be} {attrs}",
    "help me find {attrs} {type}",
    "i'm shopping for {attrs} {type}",
    "can you get me {a_type} that {be} {attrs}",
    "i would like to purchase {attrs} {type}",
    "looking for {a_type} that {be} {attrs}",
    "i want {attrs} {type}",
)

# Product text. {A}: the attribute capitalized, {attr}: lower case, {this_type}: "this shampoo" /
# "these tea bags", {This_type}: the same capitalized, {be}: "is" / "are".
ATTRIBUTE_BULLETS = (
    "{A}: a key reason customers choose {this_type}",
    "{A} - made with {attr} in mind",
    "Features {attr} for everyday confidence",
    "{A} design, checked by our quality team",
    "Enjoy {attr} every time you use it",
)
CATEGORY_BULLETS: dict[str, tuple[str, ...]] = {
    "beauty": ("Gentle formula for everyday use", "Dermatologist tested", "Made in small batches in the USA",
               "Recyclable packaging", "Money-back guarantee if you are not satisfied"),
    "food": ("Packed fresh and sealed to lock in flavor", "Great for snacking at home, at work or on the go",
             "Store in a cool place away from sunlight", "Made in a facility with strict quality standards"),
    "fashion": ("Comfortable fit for work, travel and weekends", "Reinforced stitching for durability",
                "Please check the size chart before ordering", "Easy care fabric that keeps its shape"),
    "furniture": ("All hardware and step-by-step instructions are included",
                  "Sturdy build that holds up to daily use", "Wipe with a damp cloth",
                  "Fits apartments and small homes"),
    "electronics": ("Works with most phones, tablets and laptops", "12-month warranty and friendly support",
                    "Compact design that fits in a bag", "Tested for safety and reliability"),
}
DESCRIPTION_SENTENCES: dict[str, tuple[str, ...]] = {
    "beauty": ("Our formulas are developed with care and tested on volunteers, never on animals.",
               "Apply as directed and enjoy visible results within weeks.",
               "Each bottle is filled and sealed in our own facility."),
    "food": ("We source our ingredients from trusted growers.",
             "Every batch is tasted by our team before it is packed.",
             "Enjoy it on its own or share it with friends and family."),
    "fashion": ("Designed in-house and made to last through many washes.",
                "The cut is true to size; order your usual size.",
                "Pair it with your favorite pieces for an easy everyday look."),
    "furniture": ("The frame is built for years of use.",
                  "Clear instructions make setup straightforward.",
                  "Its clean lines suit many rooms and styles."),
    "electronics": ("Every unit is tested before it leaves the factory.",
                    "Setup takes a few minutes, no extra software needed.",
                    "Our support team is happy to help with any question."),
}
REVIEW_TITLES: dict[int, tuple[str, ...]] = {
    5: ("Love it", "Exactly what I needed", "Great value", "Highly recommend", "Five stars"),
    4: ("Very good", "Works well", "Nice quality", "Happy with it"),
    3: ("It's okay", "Average", "Does the job", "Mixed feelings"),
    2: ("Not great", "Disappointed", "Expected more"),
    1: ("Would not buy again", "Poor quality", "Returned it"),
}
REVIEW_BODIES: dict[int, tuple[str, ...]] = {
    5: ("{This_type} {be} {attr}, just as described. I would buy again.",
        "Bought {this_type} for my family and everyone is happy.",
        "Best {type} I have tried in a long time."),
    4: ("Good {type}, {attr} as promised. Shipping took a few extra days.",
        "Solid {type} for the price."),
    3: ("{This_type} {be} fine but nothing special.",
        "Decent {type}, though I expected a bit more for the money."),
    2: ("{This_type} did not live up to the description.",
        "Not what I expected from {this_type}."),
    1: ("{This_type} arrived damaged and support was slow.",
        "Would not recommend {this_type}."),
}
